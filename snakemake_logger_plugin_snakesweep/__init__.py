"""snakesweep's run output for Snakemake: progress lines with an ETA instead of job blocks.

A Snakemake logger plugin (snakemake-interface-logger-plugins 2.x), enabled for this workflow
by ``logger: [snakesweep]`` in profiles/default/config.yaml. It replaces Snakemake's console
output (it is the one stream handler); Snakemake's log file under .snakemake/log/ keeps every
job block as before.

* A real run prints what Snakemake prints, except the per-job blocks (rule, input, output,
  shell command, "Finished jobid", "N of M steps done") and the scheduler chatter: instead,
  one progress line per finished job, ``[12:03:41] 31/78 jobs done (40%), 0 failed, 2 running;
  ETA 1m50s``, with the ETA from measured job durations (progress.py). On a terminal the line
  is rewritten in place. Errors, warnings, a failed job's error block and its log
  (``show-failed-logs``), the plan preview, the job table and the workflow's own messages
  (the end-of-run summary) are shown as Snakemake shows them.
* ``--logger-snakesweep-detail`` (profile key ``logger-snakesweep-detail: true``), or
  ``--verbose``: Snakemake's output unchanged, job blocks included, plus the progress lines.
* A dry run (``-n``) prints exactly what Snakemake prints (the plan and the job table).
* Ctrl+C: a job stopped by the interruption (its command exited 130, or died from SIGINT; or
  SIGTERM once Snakemake is terminating) is one line, ``Interrupted: rule train, jobid 7
  (results/<name>/trials/<trial>/train.json)``, not a RuleException and an error block with its
  log; it counts as interrupted, not failed, in the progress line.
* Outputs Snakemake finds not writable (its ProtectedOutputException; the workflow flags none
  protected, so the sweep's file system is read-only or not the user's) are one line naming the
  file and the fix, as a step says a full or read-only disk (snakesweep.errors.disk_error_line).

The module imports nothing heavy: Snakemake imports every installed logger plugin at start-up.
"""

# No `from __future__ import annotations`: Snakemake reads the settings' field types at run time.
import logging
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from snakemake_interface_logger_plugins.base import LogHandlerBase
from snakemake_interface_logger_plugins.common import LogEvent
from snakemake_interface_logger_plugins.settings import LogHandlerSettingsBase

from .progress import RunProgress

# Plain messages of the scheduler that say nothing a progress line does not (shown with --detail).
CHATTER = (
    "Select jobs to execute...",
    "Building DAG of jobs...",
    "Updating checkpoint dependencies.",
    "DAG of jobs will be updated after completion.",
    "Assuming unrestricted shared filesystem usage.",
    "Using shell:",
    "Conda environments: ignored",
    "Singularity containers: ignored",
    "Group jobs: inactive (local execution)",
    "Rules claiming more threads will be scaled down.",
)
# Events a compact run does not print (the progress line stands for them).
JOB_EVENTS = {
    LogEvent.JOB_INFO,
    LogEvent.JOB_STARTED,
    LogEvent.JOB_FINISHED,
    LogEvent.SHELLCMD,
    LogEvent.PROGRESS,
    LogEvent.RESOURCES_INFO,
    LogEvent.WORKFLOW_STARTED,
    LogEvent.GROUP_INFO,
}
# A job's command stopped by Ctrl+C: the shell or the supervisor exits 130 (128 + SIGINT), or the
# process dies from the signal; SIGTERM (143) counts once Snakemake is terminating its jobs.
INTERRUPT_RE = re.compile(r"non-zero exit status 130\b|died with <Signals\.SIGINT")
TERMINATED_RE = re.compile(r"non-zero exit status 143\b|died with <Signals\.SIGTERM")
TERMINATING = "Terminating processes on user request"
# the first file of a ProtectedOutputException ("affected files:" then one indented path per line)
PROTECTED_RE = re.compile(r"affected files:\s*\n\s*(\S[^\n]*)")
HINT = (
    "snakesweep: progress lines instead of Snakemake's job blocks (those go to .snakemake/log/; "
    "--logger-snakesweep-detail prints them here)"
)


def _refused_write(record: logging.LogRecord) -> str | None:
    """Snakemake's ProtectedOutputException as one line naming the file and the fix (None: another
    record). The workflow flags no output protected(), so an existing output that is not writable
    means the sweep's file system is read-only or the user lacks permission (snakesweep.errors)."""
    text = record.getMessage() if record.levelno >= logging.ERROR else ""
    found = PROTECTED_RE.search(text) if text.startswith("ProtectedOutputException") else None
    if found is None:
        return None
    import errno
    import os

    path = found.group(1).strip()
    try:
        code = errno.EROFS if os.statvfs(path).f_flag & os.ST_RDONLY else errno.EACCES
        from snakesweep.errors import disk_error_line
    except (OSError, ImportError):
        return None
    return disk_error_line(OSError(code, os.strerror(code), path))


def _job_id(value):
    """A job's id: an int for plain jobs, a uuid string for a group job (Slurm bundles)."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return str(value)


@dataclass
class LogHandlerSettings(LogHandlerSettingsBase):
    detail: bool = field(
        default=False,
        metadata={
            "help": "Print Snakemake's job blocks (rule, input, output, reason, shell command) as "
            "well as snakesweep's progress lines (--verbose implies it).",
            "env_var": False,
            "required": False,
        },
    )


def _event(record: logging.LogRecord) -> str | None:
    return getattr(record, "event", None)


def _as_dict(obj: Any) -> dict:
    if obj is None:
        return {}
    if isinstance(obj, dict):
        return obj
    items = getattr(obj, "items", None)
    try:
        return dict(items()) if callable(items) else {}
    except Exception:  # noqa: BLE001 - a resource listing must never break logging
        return {}


class LogHandler(LogHandlerBase):
    """Snakemake's default console handler with the job blocks replaced by progress lines."""

    def __post_init__(self) -> None:
        from snakemake.logging import ColorizingTextHandler, DefaultFilter, DefaultFormatter

        cs = self.common_settings
        self.stream = sys.stdout if getattr(cs, "stdout", False) else sys.stderr
        # Everything that is shown is shown exactly as Snakemake's own console handler shows it.
        self.inner = ColorizingTextHandler(
            nocolor=bool(getattr(cs, "nocolor", False)),
            stream=self.stream,
            formatter=DefaultFormatter(getattr(cs, "quiet", None), bool(getattr(cs, "show_failed_logs", False))),
            filter=DefaultFilter(
                getattr(cs, "quiet", None),
                bool(getattr(cs, "debug_dag", False)),
                bool(getattr(cs, "verbose", False)),
                bool(getattr(cs, "dryrun", False)),
                bool(getattr(cs, "printshellcmds", False)),
            ),
        )
        self.dryrun = bool(getattr(cs, "dryrun", False))
        self.detail = bool(getattr(self.settings, "detail", False)) or bool(getattr(cs, "verbose", False))
        quiet = {str(getattr(q, "name", q)).lower() for q in (getattr(cs, "quiet", None) or ())}
        self.show_progress = not self.dryrun and not ({"all", "progress"} & quiet)
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.state = RunProgress()
        self.hinted = False
        self.live = False  # a progress line sits on the terminal, not yet ended by a newline
        self.last_line_at = 0.0
        self.last_line_count = -1
        self.failed_since_line = False
        self.pending_at: float | None = None  # a progress line waiting for the next jobs to start
        self.starting: set = set()  # jobs announced as starting, not yet seen running
        self.terminating = False  # Snakemake said it is terminating on user request (Ctrl+C)
        self.held_errors: list[str] = []  # RuleException texts of interrupted jobs, not shown

    # The interface's declarations: one stream handler, its own filter and formatter.
    @property
    def writes_to_stream(self) -> bool:
        return True

    @property
    def writes_to_file(self) -> bool:
        return False

    @property
    def has_filter(self) -> bool:
        return True

    @property
    def has_formatter(self) -> bool:
        return True

    @property
    def needs_rulegraph(self) -> bool:
        return False

    # ------------------------------------------------------------------ records

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if self.pending_at is not None and not self._part_of_start(record):
                self._flush_pending()
            if not self.dryrun and self._interruption(record):
                self._progress_after(record)
                return
            self._track(record)
            refused = None if self.detail else _refused_write(record)
            if refused:  # the sweep's file system refuses the outputs: one line, as a step says it
                self._write(refused)
            elif self.dryrun or self.detail or self._shown_compact(record):
                was_live = self.live
                self._clear_live()
                self.inner.handle(record)
                if was_live:  # a terminal: the progress line stays below the messages
                    self._draw(self._line(time.time()))
            self._progress_after(record)
        except Exception:  # noqa: BLE001 - logging must never stop a run
            self.handleError(record)

    def _interruption(self, record: logging.LogRecord) -> bool:
        """Ctrl+C: True when the record was handled here (an interrupted job: one line)."""
        event = _event(record)
        if event is None and record.getMessage().startswith(TERMINATING):
            self.terminating = True
            return False
        if event == LogEvent.ERROR:
            text = record.getMessage()
            if "RuleException" in text and (INTERRUPT_RE.search(text) or (self.terminating and TERMINATED_RE.search(text))):
                self.held_errors.append(text)  # its job's error block follows: both become one line
                return True
            return False
        if event != LogEvent.JOB_ERROR or not self.held_errors:
            return False
        outputs = [str(f) for f in (getattr(record, "output", None) or [])]
        logs = [str(f) for f in (getattr(record, "log", None) or [])]
        for i, text in enumerate(self.held_errors):
            if any(f in text for f in outputs + logs):
                del self.held_errors[i]
                break
        else:
            return False
        jobid = _job_id(getattr(record, "jobid", None))
        rule = str(getattr(record, "rule_name", "?"))
        self.state.job_interrupted(jobid, rule, record.created)
        self.failed_since_line = True
        where = f" ({', '.join(outputs)})" if outputs else ""
        self._write(f"Interrupted: rule {rule}, jobid {jobid}{where}")
        return True

    def _part_of_start(self, record: logging.LogRecord) -> bool:
        """The scheduler starting the next jobs after one finished: the progress line waits for
        them, so that its running count is right."""
        event = _event(record)
        if event in (LogEvent.JOB_STARTED, LogEvent.JOB_INFO, LogEvent.SHELLCMD):
            return True
        return event is None and record.getMessage().startswith(("Select jobs to execute...", "Execute "))

    def _flush_pending(self) -> None:
        t, self.pending_at = self.pending_at, None
        self.starting = set()
        if t is not None:
            self._write(self._line(t))

    def _shown_compact(self, record: logging.LogRecord) -> bool:
        event = _event(record)
        if event in JOB_EVENTS:
            return False
        if event is None and record.levelno <= logging.INFO:
            msg = record.getMessage()
            if msg.startswith(CHATTER):
                return False
        return True

    def _track(self, record: logging.LogRecord) -> None:
        event = _event(record)
        t = record.created
        st = self.state
        if event == LogEvent.RUN_INFO and isinstance(getattr(record, "stats", None), dict):
            st.job_table(record.stats)
        elif event == LogEvent.RESOURCES_INFO and getattr(record, "provided_resources", None) is not None:
            st.provided_resources(_as_dict(record.provided_resources))
        elif event == LogEvent.JOB_STARTED:
            self.starting = {_job_id(j) for j in getattr(record, "jobs", None) or []}
        elif event == LogEvent.JOB_INFO:
            self.starting.discard(_job_id(record.jobid))
            st.job_started(
                _job_id(record.jobid), str(record.rule_name), t,
                _as_dict(getattr(record, "resources", None)), next(iter(getattr(record, "output", None) or []), None),
            )
        elif event == LogEvent.JOB_FINISHED:
            st.job_finished(int(record.job_id), t)
        elif event == LogEvent.JOB_ERROR:
            st.job_failed(_job_id(record.jobid), str(record.rule_name), t)
            self.failed_since_line = True
        elif event == LogEvent.GROUP_ERROR:
            for info in getattr(record, "job_error_info", None) or []:
                st.job_failed(int(info["jobid"]), str(info["rule_name"]), t)
            self.failed_since_line = True
        elif event == LogEvent.PROGRESS:
            st.progress(record.done, record.total)

    def _progress_after(self, record: logging.LogRecord) -> None:
        if not self.show_progress:
            return
        event = _event(record)
        if event == LogEvent.JOB_INFO and not self.hinted and not self.detail:
            self.hinted = True
            self._write(HINT)
        if self.tty and not self.detail:
            # a terminal: one line, rewritten at every change; kept once every job is done
            if event in (LogEvent.JOB_INFO, LogEvent.PROGRESS, LogEvent.JOB_ERROR, LogEvent.GROUP_ERROR):
                self._draw(self._line(record.created))
                st = self.state
                if st.total and st.n_done >= st.total:
                    self._write("")
            return
        if event == LogEvent.JOB_INFO and self.pending_at is not None and not self.starting:
            self._flush_pending()  # the jobs started after the last finish are all running
            return
        if event not in (LogEvent.PROGRESS, LogEvent.JOB_ERROR, LogEvent.GROUP_ERROR):
            return
        # a log file or pipe: one line per finished job; about 50 lines at most for a big run
        st = self.state
        count = st.n_done + len(st.failed) + len(st.interrupted)
        step = max(1, st.total // 50)
        if (
            count == st.total
            or self.failed_since_line
            or count - self.last_line_count >= step
            or record.created - self.last_line_at >= 60
        ) and count != self.last_line_count:
            self.last_line_count = count
            self.last_line_at = record.created
            self.failed_since_line = False
            self.pending_at = record.created  # written once the next jobs have started

    def _line(self, t: float) -> str:
        return self.state.line(t, clock=time.strftime("%H:%M:%S", time.localtime(t)))

    # ------------------------------------------------------------------ output

    def _write(self, text: str) -> None:
        """A line of its own; an empty text ends the progress line on a terminal (keeps it)."""
        if self.live and not text:
            self.stream.write("\n")
            self.live = False
        else:
            self._clear_live()
            self.stream.write(text + "\n")
        self.stream.flush()

    def _draw(self, text: str) -> None:
        self.stream.write("\r\033[K" + text)
        self.stream.flush()
        self.live = True

    def _clear_live(self) -> None:
        if self.live:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self.live = False

    def close(self) -> None:
        try:
            if self.pending_at is not None:
                self._flush_pending()
            if self.live and self.show_progress:
                # keep the last state on screen
                self.stream.write("\n")
                self.stream.flush()
                self.live = False
        finally:
            super().close()
