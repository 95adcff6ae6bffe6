"""Label recognition: client emotion, counselor strategy, session psychotherapy and topic.

The embedded default is a linear model over TF-IDF word and character n-grams (jieba
words for Chinese) with the preceding turns as context; a majority baseline and a
fine-tuned transformer encoder share its interface. ``load_classifier(path)`` returns a
model whose ``predict(texts, contexts=None)`` gives one label per text.
"""

from psyinsight.classify.persistence import LanguageMismatchWarning, SavedClassifier, load_classifier, save_classifier
from psyinsight.classify.tasks import TASK_NAMES, TASKS, ExtractConfig, extract_examples, get_task

Classifier = SavedClassifier
"""What ``load_classifier`` returns: ``.predict``, ``.predict_proba``, ``.predict_sets``, ``.labels``."""

__all__ = [
    "TASKS",
    "TASK_NAMES",
    "Classifier",
    "ExtractConfig",
    "LanguageMismatchWarning",
    "SavedClassifier",
    "extract_examples",
    "get_task",
    "load_classifier",
    "save_classifier",
]
