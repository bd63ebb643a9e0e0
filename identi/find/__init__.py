"""A function-description benchmark with known answers (after FIND, Schwettmann et al. 2023),
and agents that describe black boxes by experiment.

`identi.find.protocol` holds the contract: `BlackBox` (``query`` within a budget), `Description`
(code defining ``f`` and one line of text), `Transcript` (JSONL of hypotheses, experiments and
updates), `Task` (a box with its ground truth) and the agent registry.
"""

from identi.find.protocol import (KINDS, NUMERIC_DOMAIN, Agent, BlackBox, CountedBox, Description,
                                  QueryBudgetError, Task, Transcript, agent_names,
                                  compile_description, get_agent, register_agent)

__all__ = ["KINDS", "NUMERIC_DOMAIN", "Agent", "BlackBox", "CountedBox", "Description",
           "QueryBudgetError", "Task", "Transcript", "agent_names", "compile_description",
           "get_agent", "register_agent"]
