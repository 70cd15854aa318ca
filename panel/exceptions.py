"""Errors of client onboarding: each problem names the form field it belongs beside."""

from dataclasses import dataclass

from wallets.exceptions import BadData


@dataclass(frozen=True)
class FieldProblem:
    """One refusal: `field` of the client form, or of balance row `row` when `row` is set."""

    field: str
    message: str
    row: int | None = None


class OnboardingError(BadData):
    """The client was not created: nothing was written. Carries every problem found at once."""

    def __init__(self, problems: list[FieldProblem]):
        self.problems = tuple(problems)
        super().__init__(" ".join(problem.message for problem in self.problems))
