#!/usr/bin/env bash
# Install the Debian packages that the tests and the demo need, skipping the
# ones already installed. Run as root (or with sudo) on Debian or Ubuntu.
#
#   scripts/install-system-packages.sh          # everything the tests need
#   scripts/install-system-packages.sh --demo   # only what the demo needs
#
# Add a package by appending one line to a list with the reason beside it.
set -euo pipefail

# Needed to render notice letters, by the demo and by the tests.
LETTER_PACKAGES=(
  libpango-1.0-0  # text layout of WeasyPrint (notice letter PDFs)
  libpangoft2-1.0-0  # font loading of WeasyPrint (notice letter PDFs)
  fonts-ipaexfont-gothic  # Japanese font of the notice letters
  fonts-noto-cjk  # fallback for names outside IPAex (for example 𠮷) in letters
)
# Needed by the tests only.
TEST_PACKAGES=(
  dovecot-imapd  # real IMAP server for the bounce source tests
  chromium  # headless browser of the renewal page tests, driven by Playwright
)

case "${1:-}" in
  --demo) PACKAGES=("${LETTER_PACKAGES[@]}") ;;
  "") PACKAGES=("${LETTER_PACKAGES[@]}" "${TEST_PACKAGES[@]}") ;;
  *) echo "usage: $0 [--demo]" >&2; exit 2 ;;
esac

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
