"""Use saved classifiers as a free, local labeller for sessions (construction pipeline).

``label_sessions`` fills the labels a session lacks (missing, empty or Unknown) with the
predictions of the given classifiers, recording each filled value as a repair
("classifier_label") so a reader can tell model labels from annotated ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from psyinsight.classify.persistence import SavedClassifier
from psyinsight.classify.tasks import extract_inputs
from psyinsight.data.schema import Repair, Session
from psyinsight.data.taxonomy import UNKNOWN

RULE = "classifier_label"


def _missing(labels: Sequence[str]) -> bool:
    return not labels or list(labels) == [UNKNOWN]


def label_sessions(
    sessions: Sequence[Session], classifiers: Mapping[str, SavedClassifier] | Sequence[SavedClassifier], *, overwrite: bool = False
) -> list[Session]:
    """Copies of ``sessions`` with missing labels predicted; ``overwrite`` relabels everything.

    Each classifier labels only sessions of its own language.
    """
    models = list(classifiers.values()) if isinstance(classifiers, Mapping) else list(classifiers)
    out = [s.model_copy(deep=True) for s in sessions]
    for saved in models:
        chosen = [s for s in out if s.language == saved.language]
        rows = [r for r in extract_inputs(chosen, saved.task, config=saved.extract_config) if overwrite or _missing(r.labels)]
        if not rows:
            continue
        multi = saved.manifest.get("label_mode") == "multi"
        predicted = (
            saved.model.predict_sets([r.text for r in rows], [r.context for r in rows])
            if multi
            else [[p] for p in saved.model.predict([r.text for r in rows], [r.context for r in rows])]
        )
        by_uid = {s.uid: s for s in chosen}
        for row, labels in zip(rows, predicted):
            session = by_uid[row.session_uid]
            detail = f"{saved.task} by {saved.manifest['model_type']} model {saved.path}"
            if saved.task in ("psychotherapy", "topic"):
                session.repairs.append(Repair(rule=RULE, field=saved.task, original=getattr(session, saved.task), detail=detail))
                setattr(session, saved.task, labels[0])
                continue
            turn = session.dialog[int(row.meta["turn_index"])]
            key = "emotional label" if saved.task == "emotion" else "strategy"
            original = turn.emotions if saved.task == "emotion" else turn.strategies
            session.repairs.append(Repair(rule=RULE, field=key, turn=turn.id or None, original=original, detail=detail))
            if saved.task == "emotion":
                turn.emotions = list(labels)
            else:
                turn.strategies = list(labels)
    return out
