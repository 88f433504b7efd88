"""The demo: a tiny but real model tree shipped with the package (`install_tiny_tree`), searched on CPU by
`raygems demo`, and used by the tests; the toy tasks it was trained on and is searched on (`toy_arith`,
`toy_choice`: `raygems.demo.toy_tasks`, registered with the task registry). Its builder, a tool, lives in
`raygems.demo.builder`."""
from raygems.demo.tiny_tree import TinyTree, default_tiny_tree_root, install_tiny_tree

__all__ = ["TinyTree", "default_tiny_tree_root", "install_tiny_tree"]
