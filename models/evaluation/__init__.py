"""Evaluations of HealthOS scores and models on real public datasets."""

from models.evaluation.news2 import evaluate_news2

__all__ = ["evaluate_news2"]
