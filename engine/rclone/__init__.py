"""Driving the real rclone binary: one long-lived ``rclone rcd`` per engine, spoken to over its HTTP API.

Import from the modules (``binary``, ``spawn``, ``launch``, ``daemon``): this package imports nothing, so that a
command line can start rclone (:mod:`engine.rclone.launch`) before it loads the HTTP client that
:mod:`engine.rclone.daemon` brings.
"""
