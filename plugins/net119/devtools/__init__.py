"""Local stand-ins for production services: an embedded PostgreSQL, an SMTP
sink and a synthetic population. The demo, the benchmark and the tests use
them; production deployments configure real servers instead."""
