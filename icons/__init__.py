"""DataUploader's artwork, installed as the ``datauploader_icons`` package (see pyproject's ``package-dir``).

``make_icons.py`` draws every image here; read them with ``importlib.resources.files("datauploader_icons")``
so they are found in a wheel and in a frozen app alike.
"""
