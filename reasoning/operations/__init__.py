"""Operations scorers: where patients wait and which stage limits flow (``docs/operations.md``)."""

from reasoning.operations.queue_bottleneck import (
    QueueBottleneckScorer,
    QueueProjection,
    project_queue_point,
)

__all__ = ["QueueBottleneckScorer", "QueueProjection", "project_queue_point"]
