"""The demo `make run` loads: its configuration (demo_config.json) and the loading rules (load.py)."""
