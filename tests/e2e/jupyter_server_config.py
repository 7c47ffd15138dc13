# Jupyter Server settings for the end-to-end tests: a quiet, isolated JupyterLab or Notebook 7
# (Voila runs without this file; see _jupyter.start_voila).
#
# Deliberately NOT set: websocket_max_message_size / max_buffer_size. The studio must
# upload a 30 MB photo through a server with the default 10 MiB websocket message cap,
# exactly as users run it.
c = get_config()  # noqa: F821 (provided by Jupyter when it loads this file)

c.ServerApp.ip = "127.0.0.1"
c.ServerApp.open_browser = False
c.ServerApp.allow_remote_access = False
# No language server, no update or news checks: nothing reaches outside 127.0.0.1.
c.ServerApp.jpserver_extensions = {"jupyter_lsp": False}
c.LabApp.news_url = None
c.LabApp.check_for_updates_class = "jupyterlab.NeverCheckForUpdate"
# Kernels and terminals are for this test only.
c.ServerApp.terminals_enabled = False
c.MappingKernelManager.cull_idle_timeout = 0
# CI containers run as root; the server is bound to 127.0.0.1 and lives for one test.
c.ServerApp.allow_root = True
# The extension manager would query PyPI: not wanted in a test.
c.LabApp.extension_manager = "readonly"
