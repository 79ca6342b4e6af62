#!/usr/bin/env bash
# Install the Debian packages that the tests and the demo need, skipping the
# ones already installed. Run as root (or with sudo) on Debian or Ubuntu.
# Add a package by appending one line to PACKAGES with the reason beside it.
set -euo pipefail

PACKAGES=(
  dovecot-imapd  # real IMAP server for the bounce source tests
  libpango-1.0-0  # text layout of WeasyPrint (notice letter PDFs)
  libpangoft2-1.0-0  # font loading of WeasyPrint (notice letter PDFs)
  fonts-ipaexfont-gothic  # Japanese font of the notice letters
  fonts-noto-cjk  # fallback for names outside IPAex (for example 𠮷) in letters
  chromium  # headless browser of the renewal page tests, driven by Playwright
)

missing=()
for package in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "All system packages are installed."
  exit 0
fi

echo "Installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
