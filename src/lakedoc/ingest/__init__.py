"""Ingestion: office files -> the bronze `documents` table."""
