"""The VM's screen, keyboard, mouse and consoles: screenshot, send-keys/type, pointer, serial, display address.

Core layer: the CLI and the web UI call these same functions.
"""
