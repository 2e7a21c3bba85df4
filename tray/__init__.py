"""The tray applet: a thin pystray icon + Tk dialogs + plyer notifications over :mod:`engine`.

Nothing in the engine depends on this package; everything the tray does goes through the engine's public API,
which the CLI uses too.
"""
