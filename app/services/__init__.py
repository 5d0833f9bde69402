"""Domain services: keyword-only functions that take the session, flush, and raise AppErrors."""
