"""A model actor is up (and can tell the driver its node) before it imports torch: the backend's imports run in
`warm_up`, which the driver sends right after asking for the node, so they overlap the first downloads. Each
case runs in a fresh interpreter, the only way to see which modules an import pulled in."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

PROBE = """
import json, sys, tempfile
from raygems.runtime.actors import ModelActor
from raygems.runtime.evaluation import EvaluatorSpec
seen = {"imported": "torch" in sys.modules}
actor = ModelActor(EvaluatorSpec(backend=sys.argv[1]), pool=None, store_root=tempfile.mkdtemp(), threads=1)
seen["started"] = "torch" in sys.modules
actor.warm_up()
seen["warmed"] = "torch" in sys.modules
seen["model_classes"] = "transformers.models.auto.modeling_auto" in sys.modules
if seen["warmed"]:
    import torch
    seen["threads"] = torch.get_num_threads()
print(json.dumps(seen))
"""


def probe(backend: str) -> dict:
    done = subprocess.run([sys.executable, "-c", PROBE, backend], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_torch_is_imported_by_warm_up_not_by_starting_the_actor():
    seen = probe("transformers")
    assert not seen["imported"] and not seen["started"]        # the actor answers `node_id` without torch
    assert seen["warmed"] and seen["model_classes"]            # warm_up brought torch and the model classes
    assert seen["threads"] == 1                                # and the actor's thread limit


def test_an_actor_that_answers_from_a_matrix_never_imports_torch():
    seen = probe("replay")
    assert not seen["started"] and not seen["warmed"]
