"""A plug-in that cannot be imported in a model actor (as one needing a library its nodes lack): importing it
anywhere else (the process that starts the search, the driver actor) works. tests/runtime/test_live_search_plugins.py
runs a search with it: the search stops with one line instead of starting model actors forever."""
import sys


def _inside_a_model_actors_start() -> bool:
    frame = sys._getframe()
    while frame is not None:
        code = frame.f_code
        if code.co_name == "__init__" and code.co_filename.replace("\\", "/").endswith("raygems/runtime/actors.py"):
            return True
        frame = frame.f_back
    return False


if _inside_a_model_actors_start():
    raise ImportError("libmissing.so.1: cannot open shared object file (the plug-in's library is not on this node)")
