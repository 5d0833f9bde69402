"""Pydantic models of the API's input and output."""
