"""vmdeck web UI assets (web layer): Jinja2 page templates and static files served by vmdeck itself."""
