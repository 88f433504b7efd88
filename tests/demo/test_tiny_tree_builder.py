"""The builder tool: a fresh (short) build makes the same kind of tree as the shipped files. Its trained values
are not compared: they depend on how long it trains and on the CPU's float kernels (docs/backends.md)."""
from __future__ import annotations

import json

import pytest

from raygems.demo import install_tiny_tree
from raygems.demo.builder.build import build_files
from raygems.demo.builder.compare import structure_differences, weight_differences
from raygems.demo.tiny_tree import FILES_MANIFEST, SHIPPED_FILES
from raygems.demo.tree_spec import TinyTreeConfig


@pytest.fixture(scope="module")
def short_build(tmp_path_factory):
    """Every model of the tree, trained for 1/20 of the steps (a few seconds), in one process."""
    return build_files(tmp_path_factory.mktemp("build") / "files", TinyTreeConfig(main_steps=40), workers=1,
                       progress=False)


def test_a_fresh_build_has_the_shipped_structure(short_build):
    assert structure_differences(short_build, SHIPPED_FILES) == []
    differences = weight_differences(short_build, SHIPPED_FILES)
    assert len(differences) == 14 and all(d > 0 for d in differences.values())   # 40 steps, not 800


def test_the_comparison_finds_a_different_tree(short_build, tmp_path):
    import shutil

    other = tmp_path / "files"
    shutil.copytree(short_build, other)
    (other / "common" / "chat_template.jinja").write_text("{{ messages }}")
    manifest = json.loads((other / FILES_MANIFEST).read_text())
    del manifest["files"]["models/quietmath/tiny-arith-pro/model.safetensors"]
    (other / FILES_MANIFEST).write_text(json.dumps(manifest))
    problems = structure_differences(other, SHIPPED_FILES)
    assert "common/chat_template.jinja: contents differ" in problems
    assert f"only in {SHIPPED_FILES}: models/quietmath/tiny-arith-pro/model.safetensors" in problems


def test_built_files_install_and_record_where_they_were_built(short_build, tmp_path):
    tree = install_tiny_tree(tmp_path / "tree", files=short_build)
    assert len(tree.records) == 18 and tree.built_on["cpu"] and tree.built_on["torch"]
    shipped = install_tiny_tree(tmp_path / "shipped")
    assert [r.model_id for r in tree.records] == [r.model_id for r in shipped.records]


def test_a_build_refuses_a_folder_that_is_not_empty(tmp_path):
    (tmp_path / "keep.txt").write_text("x")
    with pytest.raises(ValueError, match="not empty"):
        build_files(tmp_path, TinyTreeConfig(main_steps=2), workers=1, progress=False)
    with pytest.raises(ValueError, match="workers"):
        build_files(tmp_path / "new", workers=3)
