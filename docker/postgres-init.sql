-- The system of record lives in its own database and role, apart from
-- Airflow's metadata.
CREATE ROLE net119 LOGIN PASSWORD 'net119';
CREATE DATABASE net119 OWNER net119;
