"""Task registry: one :class:`TaskSpec` per task, loadable from the hub or from the original files."""

from maskbench.data.tasks.registry import TASKS, TaskSpec, get_task, load, resolve_data_dir

__all__ = ["TASKS", "TaskSpec", "get_task", "load", "resolve_data_dir"]
