from __future__ import annotations

import pytest

from raygems.prior.leaderboard import (V1_TASKS, V2_TASKS, params_from_name, records_from_leaderboard_v1,
                                       records_from_leaderboard_v2)

V1_HEADER = ("t,model,average,arc,hellaswag,mmlu,truthfulqa,winogrande,gsm8k,type,architecture,weight_type,"
             "precision,merged,hub_license,params_b,hub_hearts,available_on_the_hub,model_sha,flagged,moe,date,"
             "fullname,url")


def _v1_row(model, arc, merged, flagged, moe, params=7, precision="float16"):
    return (f"🔶,{model},50,{arc},80,60,50,70,30,🔶 fine-tuned on domain-specific datasets,MistralForCausalLM,"
            f"Original,{precision},{merged},apache-2.0,{params},3,TRUE,abc,{flagged},{moe},2024-05-05T12:22:44Z,"
            f"{model},https://huggingface.co/{model}")


def test_v1_flags_are_inverted_and_flagged_rows_dropped(tmp_path):
    path = tmp_path / "v1.csv"
    path.write_text("\n".join([
        V1_HEADER,
        _v1_row("a/plain-7b", 60, merged="TRUE", flagged="TRUE", moe="TRUE"),       # i.e. not merged, not flagged
        _v1_row("b/merged-7b", 62, merged="FALSE", flagged="TRUE", moe="FALSE"),    # merged, MoE
        _v1_row("c/flagged-7b", 90, merged="TRUE", flagged="FALSE", moe="TRUE"),    # flagged: dropped
        _v1_row("a/plain-7b", 64, merged="TRUE", flagged="TRUE", moe="TRUE", precision="bfloat16"),  # re-run
        _v1_row("d/tiny-350m", 30, merged="TRUE", flagged="TRUE", moe="TRUE", params=0),
    ]) + "\n")
    records = records_from_leaderboard_v1(path)
    assert set(records["model_id"]) == {"a/plain-7b", "b/merged-7b", "d/tiny-350m"}
    assert set(records["task"]) == {task for task, _ in V1_TASKS.values()}
    by_model = records[records["task"] == "arc_challenge"].set_index("model_id")
    assert by_model.loc["a/plain-7b", "score"] == pytest.approx(0.62)          # mean of 60 and 64, 0-1 scale
    assert not by_model.loc["a/plain-7b", "merged"] and by_model.loc["b/merged-7b", "merged"]
    assert by_model.loc["b/merged-7b", "moe"] and not by_model.loc["a/plain-7b", "moe"]
    assert by_model.loc["d/tiny-350m", "params_b"] == pytest.approx(0.35)     # 0 = unknown -> from the name
    assert by_model.loc["a/plain-7b", "type"] == "finetuned"
    kept = records_from_leaderboard_v1(path, keep_flagged=True)
    assert "c/flagged-7b" in set(kept["model_id"])


@pytest.mark.parametrize("name, expected", [
    ("Qwen/Qwen2.5-1.5B-Instruct", 1.5), ("facebook/opt-350m", 0.35), ("meta-llama/Llama-2-7b-chat-hf", 7.0),
    ("mistralai/Mixtral-8x7B-v0.1", None), ("openai-community/gpt2", None), ("x/phi-1_5", None),
])
def test_params_from_name(name, expected):
    assert params_from_name(name) == (pytest.approx(expected) if expected is not None else None)


def test_real_v1_snapshot(shared_dir):
    records = records_from_leaderboard_v1(shared_dir / "data/leaderboard/huggingface_v1_2024-07-07.csv")
    assert records.groupby(["model_id", "task"]).size().max() == 1
    assert 6500 < records["model_id"].nunique() < 6811          # flagged models removed
    assert records["score"].between(0, 1).all()
    mixtral = records[records["model_id"] == "mistralai/Mixtral-8x7B-v0.1"]
    assert len(mixtral) == 6 and mixtral["moe"].all() and not mixtral["merged"].any()
    # the inverted column, fixed: most v1 models are not merges
    assert records.drop_duplicates("model_id")["merged"].mean() < 0.3


def test_real_v2_snapshot(shared_dir):
    records = records_from_leaderboard_v2(shared_dir / "data/leaderboard/huggingface_v2_2025-03-21.csv")
    assert set(records["task"]) == {task for task, _ in V2_TASKS.values()}
    assert records["score"].between(0, 1).all()
    models = records.drop_duplicates("model_id")
    assert not (models["base_model"] == "Removed").any()
    assert not (models["base_model"].str.lower() == models["model_id"].str.lower()).any()
    assert models["base_model"].notna().sum() > 2000
    assert models["params_b"].isna().mean() < 0.01
