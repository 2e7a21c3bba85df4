"""DataUploader's headless engine.

Both front ends (the ``datauploader`` CLI and the tray applet) use only what this package exports; nothing
here imports a GUI toolkit, so the engine runs unattended on a server or under a service manager.
"""

__version__ = "0.1.0"
