"""The data lake side: landing files into ADLS Gen2 (``lakedoc land``) and moving processed input out of
the landing zone (``lakedoc archive``, task ``archive_inputs``). :mod:`lakedoc.lake.storage` hides
whether a path is an ``abfss://`` URI (the DataLake SDK) or a local folder (``os``)."""
