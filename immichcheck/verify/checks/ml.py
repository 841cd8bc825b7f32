"""Machine-learning service checks: /ping, one tiny CLIP text inference and how long it took."""

from __future__ import annotations

from immichcheck.verify.checks import Facts, Verdict, check, failed, passed, warned

PING = "IC-ML-301"
PREDICT = "IC-ML-302"
DEFAULT_SLOW_SECONDS = 1.0


def clip_dimension(model: str) -> int | None:
    """Embedding length of a CLIP model by its family (None when unknown: any length is taken)."""
    name = model.upper()
    if "VIT-B" in name or "RN50" in name or "XLM-ROBERTA-BASE" in name:
        return 512
    if "VIT-L" in name or "ROBERTA-LARGE" in name:
        return 768
    if "VIT-H" in name:
        return 1024
    if "VIT-G" in name or "VIT-BIGG" in name:
        return 1280
    return None


@check(PING, probes=("ml.ping",))
def answers_ping(facts: Facts) -> Verdict:
    """GET /ping answers 200 with the plain text `pong`."""
    answer = facts["ml.ping"]
    target = answer["url"]
    if answer["status"] != 200:
        return failed(f"/ping answered HTTP {answer['status']}: {answer['text'][:60]!r}", target)
    if answer["text"].strip() != "pong":
        return failed(f"/ping answered {answer['text'][:60]!r}, not 'pong'", target)
    return passed(f"pong in {answer['seconds'] * 1000:.0f} ms", target)


@check(PREDICT, probes=("ml.predict",), requires=(PING,))
def text_embedding(facts: Facts) -> Verdict:
    """A CLIP textual /predict returns an embedding of the model's length."""
    answer = facts["ml.predict"]
    target = f"{answer['url']} {answer['model']}"
    if answer["problem"]:
        return failed(f"/predict failed: {answer['problem']} ({answer['text'][:60]!r})", target)
    expected = facts.settings.get("clip_dimension") or clip_dimension(answer["model"])
    if expected and answer["dimension"] != expected:
        return failed(f"embedding has {answer['dimension']} values, expected {expected}", target)
    return passed(f"{answer['dimension']}-value embedding", target, dimension=answer["dimension"])


@check("IC-ML-303", probes=("ml.predict",), requires=(PREDICT,))
def inference_time(facts: Facts) -> Verdict:
    """The inference answered within the slow threshold (a cold model load shows up here)."""
    answer = facts["ml.predict"]
    limit = float(facts.settings.get("slow_inference_seconds", DEFAULT_SLOW_SECONDS))
    seconds = float(answer["seconds"])
    target = f"{answer['url']} {answer['model']}"
    if seconds > limit:
        return warned(
            f"CLIP text inference took {seconds:.2f} s (over {limit:g} s): a cold model loading, "
            "or too little CPU",
            target,
            seconds=seconds,
        )
    return passed(f"CLIP text inference in {seconds * 1000:.0f} ms", target, seconds=seconds)
