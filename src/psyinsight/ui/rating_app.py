"""The human-rating web app (Gradio Blocks): blind A/B or single-response rating.

A rater enters their id, then rates each item on the paper's four criteria
(interactivity, helpfulness, comfort, explainability; 1 to 5), plus an optional overall
preference in A/B mode. Items come in a per-rater random order; in A/B mode which model
is "Response A" is drawn per item and rater (``items.blind_sides``) and the model names
never reach the page. Every save goes straight to SQLite (``ratings.RatingStore``);
coming back to an item shows the stored scores, and saving again updates them. A rater
who returns resumes at their first unrated item.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psyinsight.errors import PsyInsightError
from psyinsight.ui.items import SIDES, Candidate, ItemSet, RatingItem, blind_sides, rater_order
from psyinsight.ui.ratings import CRITERIA, SCALE, Rating, RatingStore

CRITERION_HELP: dict[str, tuple[str, str]] = {
    "interactivity": ("Interactivity · 互动性", "Does it engage the client and invite them to go on (questions, follow-ups)?"),
    "helpfulness": ("Helpfulness · 有用性", "Does it help the client understand or work on their problem?"),
    "comfort": ("Comfort · 安慰性", "Does the client feel heard, accepted and supported?"),
    "explainability": ("Explainability · 可解释性", "Do the observation and reasoning make the response's intent clear and justified?"),
}

PREFERENCE_CHOICES = [("Response A", "A"), ("Response B", "B"), ("Tie", "tie")]

CSS = """
#context { max-height: 320px; overflow-y: auto; border-left: 3px solid #9ca3af; padding-left: 0.75em; }
"""


@dataclass
class RatingConfig:
    """How the rating study runs."""

    seed: int = 13
    """Seed for the per-rater item order and A/B sides; stored with every rating."""
    study: str | None = None
    """Study name stored with each rating; defaults to the system names ("a vs b")."""
    show_reference: bool = False
    """Show the dataset's counselor turn as a reference (off: raters judge the responses alone)."""
    title: str = "Rate counseling responses"


def _context_md(item: RatingItem) -> str:
    if not item.context:
        return "*No dialogue context was given for this item.*"
    parts = []
    for m in item.context:
        who = {"user": "Prompt", "assistant": "Counselor"}.get(m["role"], m["role"].title())
        parts.append(f"**{who}:**\n\n{m['content']}")
    return "\n\n".join(parts)


def _response_md(label: str, cand: Candidate) -> str:
    lines = [f"### {label}"]
    if cand.observation:
        lines.append(f"**Observation:** {cand.observation}")
    if cand.reasoning:
        lines.append(f"**Reasoning:** {cand.reasoning}")
    lines.append(f"**Response:** {cand.response}" if (cand.observation or cand.reasoning) else cand.response)
    return "\n\n".join(lines)


def build_rating_app(item_set: ItemSet, store: RatingStore, config: RatingConfig | None = None) -> Any:
    """The rating page as a ``gr.Blocks``; call ``.launch(css=CSS, ...)`` on it."""
    import gradio as gr

    config = config or RatingConfig()
    if not item_set.items:
        raise PsyInsightError("there are no items to rate")
    study = config.study or item_set.study
    by_id = {it.id: it for it in item_set.items}
    ids = [it.id for it in item_set.items]
    n_sides = len(item_set.systems)
    ab = n_sides == 2

    def rated(rater: str) -> set[str]:
        """Items of this study the rater has rated (ratings of items no longer listed are ignored)."""
        return {r.item for r in store.ratings(study=study, rater=rater)} & set(ids)

    def view(state: dict[str, Any], note: str = "") -> list[Any]:
        """Every output for the item at ``state["pos"]``: progress, texts, prefilled radios."""
        rater, order, pos = state["rater"], state["order"], state["pos"]
        item = by_id[order[pos]]
        sides = blind_sides(item, rater, config.seed)
        stored = store.get(study, rater, item.id)
        by_system = dict(zip(stored.systems, stored.scores)) if stored else {}
        done = len(rated(rater))
        progress = f"**Item {pos + 1} of {len(order)}** · {done} of {len(order)} rated" + (" · ✓ rated" if stored else "")
        out: list[Any] = [
            gr.update(value=note, visible=bool(note)),
            progress,
            f"Item `{item.id}`",
            _context_md(item),
        ]
        for i in range(2):
            if i < len(sides):
                label = "Response" if not ab else f"Response {SIDES[i]}"
                out.append(gr.update(value=_response_md(label, sides[i]), visible=True))
            else:
                out.append(gr.update(value="", visible=False))
        for i in range(2):
            scores = by_system.get(sides[i].system, {}) if i < len(sides) else {}
            out += [gr.update(value=scores.get(c)) for c in CRITERIA]
        out.append(gr.update(value=stored.preference if stored else None))
        out.append(gr.update(value=stored.comment if stored else ""))
        out.append(gr.update(value=f"**Reference (dataset counselor):** {item.reference}", visible=config.show_reference and bool(item.reference)))
        return out

    with gr.Blocks(title=config.title, analytics_enabled=False) as app:
        state = gr.State(None)
        gr.Markdown(
            f"# {config.title}\n\n"
            + ("Two anonymous responses to the same dialogue; their order is random. " if ab else "")
            + "Rate each response from 1 (poor) to 5 (excellent) on the four criteria, then press **Save & next**.",
            elem_id="rating-heading",
        )
        with gr.Row():
            rater_box = gr.Textbox(label="Rater id", placeholder="your initials or rater code", elem_id="rater-id", scale=4)
            start = gr.Button("Start", variant="primary", elem_id="start", scale=1)
        status = gr.Markdown("", visible=False, elem_id="status")
        with gr.Column(visible=False, elem_id="rating-panel") as panel:
            progress = gr.Markdown("", elem_id="progress")
            item_label = gr.Markdown("", elem_id="item-id")
            gr.Markdown("#### Dialogue")
            context = gr.Markdown("", elem_id="context", line_breaks=True)
            reference = gr.Markdown("", visible=False, elem_id="reference")
            radios: list[list[Any]] = [[], []]
            responses = []
            with gr.Row():
                for i in range(2):
                    with gr.Column(visible=i < n_sides):
                        responses.append(gr.Markdown("", elem_id=f"response-{'ab'[i]}"))
                        for c in CRITERIA:
                            label, info = CRITERION_HELP[c]
                            radios[i].append(gr.Radio(list(SCALE), label=label, info=info, elem_id=f"{'ab'[i]}-{c}"))
            preference = gr.Radio(PREFERENCE_CHOICES, label="Overall, which response is better? (optional)", visible=ab, elem_id="preference")
            comment = gr.Textbox(label="Comment (optional)", lines=1, elem_id="comment")
            with gr.Row():
                prev_btn = gr.Button("← Previous", elem_id="previous")
                next_btn = gr.Button("Skip →", elem_id="skip")
                save_btn = gr.Button("Save & next", variant="primary", elem_id="save-next")

        item_outputs = [status, progress, item_label, context, *responses, *radios[0], *radios[1], preference, comment, reference]

        def begin(rater: str):
            rater = (rater or "").strip()
            if not rater:
                return [None, gr.update(visible=False), gr.update(value="⚠ Enter your rater id, then press Start.", visible=True)] + [gr.update()] * (
                    len(item_outputs) - 1
                )
            order = rater_order(ids, rater, config.seed)
            done = rated(rater)
            pos = next((k for k, i in enumerate(order) if i not in done), 0)
            st = {"rater": rater, "order": order, "pos": pos}
            note = f"Welcome back, {rater}: resuming at your first unrated item." if done else ""
            return [st, gr.update(visible=True), *view(st, note)]

        def move(st: dict[str, Any] | None, step: int):
            if not st:
                return [st, gr.update(value="⚠ Enter your rater id, then press Start.", visible=True)] + [gr.update()] * (len(item_outputs) - 1)
            st = {**st, "pos": max(0, min(len(st["order"]) - 1, st["pos"] + step))}
            return [st, *view(st)]

        def save(st: dict[str, Any] | None, *values: Any):
            if not st:
                return [st, gr.update(value="⚠ Enter your rater id, then press Start.", visible=True)] + [gr.update()] * (len(item_outputs) - 1)
            k = len(CRITERIA)
            side_values = [values[:k], values[k : 2 * k]]
            pref, note_text = values[2 * k], values[2 * k + 1]
            item = by_id[st["order"][st["pos"]]]
            sides = blind_sides(item, st["rater"], config.seed)
            rating = Rating(
                study=study,
                rater=st["rater"],
                item=item.id,
                systems=tuple(c.system for c in sides),
                scores=tuple({c: (int(v) if v is not None else None) for c, v in zip(CRITERIA, side_values[i])} for i in range(len(sides))),
                preference=pref or None,
                seed=config.seed,
                position=st["pos"],
                comment=(note_text or "").strip(),
            )
            try:
                store.save(rating)
            except PsyInsightError as exc:
                msg = str(exc).split(": ", 1)[-1]
                return [st, gr.update(value=f"⚠ Not saved: {msg}", visible=True)] + [gr.update()] * (len(item_outputs) - 1)
            total = len(st["order"])
            done = rated(st["rater"])
            if len(done) >= total:
                return [st, *view(st, f"✓ Saved. All {total} items are rated: thank you! You may revise any item.")]
            # The next unrated item after this one, wrapping around to skipped ones.
            later = [k for k in range(st["pos"] + 1, total) if st["order"][k] not in done]
            earlier = [k for k in range(total) if st["order"][k] not in done]
            st = {**st, "pos": (later or earlier)[0]}
            return [st, *view(st, f"✓ Saved item `{item.id}`.")]

        start.click(begin, [rater_box], [state, panel, *item_outputs])
        rater_box.submit(begin, [rater_box], [state, panel, *item_outputs])
        prev_btn.click(lambda st: move(st, -1), [state], [state, *item_outputs])
        next_btn.click(lambda st: move(st, +1), [state], [state, *item_outputs])
        save_btn.click(save, [state, *radios[0], *radios[1], preference, comment], [state, *item_outputs])
    return app
