"""Storage: tables, migrations, the outbox queue and the queries the rest of wagate needs."""
