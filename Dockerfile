# Airflow image with the project's Python dependencies and domain package.
FROM apache/airflow:3.3.2-python3.11

# Pango and Japanese fonts for the notice letter PDFs (WeasyPrint).
USER root
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpango-1.0-0 libpangoft2-1.0-0 \
      fonts-ipaexfont-gothic fonts-noto-cjk \
 && rm -rf /var/lib/apt/lists/*
USER airflow

COPY --chown=airflow:root requirements.txt pyproject.toml /opt/net119/
COPY --chown=airflow:root plugins/ /opt/net119/plugins/
RUN pip install --no-cache-dir -r /opt/net119/requirements.txt \
 && pip install --no-cache-dir --no-deps -e /opt/net119
