# As wxmedia.testing documents: the plugin named in conftest.py.
pytest_plugins = ["wxmedia.testing"]
