"""lakedoc: office files to governed Delta tables on Databricks."""

__version__ = "0.1.0"
