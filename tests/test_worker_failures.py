"""A failed generation answers every job it held, once, with the error the client should see."""

from __future__ import annotations

import concurrent.futures

from psyinsight.counsel.counselor import GenParams
from psyinsight.serve.config import ApiError
from psyinsight.serve.worker import _fail, _Job, _shutting_down


def _job() -> _Job:
    return _Job(prompt=[{"role": "user", "content": "hi"}], params=GenParams(), future=concurrent.futures.Future())


def test_every_unanswered_job_gets_the_error_and_an_answered_one_keeps_its_result() -> None:
    done, waiting = _job(), [_job(), _job()]
    done.future.set_result("kept")
    _fail([done, *waiting], RuntimeError("boom"))
    assert done.future.result() == "kept"
    errors = [job.future.exception(timeout=0) for job in waiting]  # raises at once if a job was left waiting
    assert all(isinstance(e, ApiError) and e.status == 500 and "boom" in str(e) for e in errors), errors


def test_a_given_error_wins_over_the_exception() -> None:
    job = _job()
    _fail([job], RuntimeError("cut short"), _shutting_down())
    assert job.future.exception(timeout=0).status == 503
