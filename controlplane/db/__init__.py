"""PostgreSQL: the embedded server, the connection pool, the migrations."""
