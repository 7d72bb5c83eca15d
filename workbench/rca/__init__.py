"""The root-cause engine: a guided decision tree over a case, ranked causes, one diagnosis.

See ``README.md`` beside this file for the pipeline and how to add your own checks.
"""

from workbench.rca.context import Context
from workbench.rca.diagnosis import Diagnosis, diagnose
from workbench.rca.evidence import Candidate, Evidence
from workbench.rca.ranking import RootCause
from workbench.rca.tree import Node, Tree, default_tree, load_plugins, register

__all__ = ["Candidate", "Context", "Diagnosis", "Evidence", "Node", "RootCause", "Tree", "default_tree", "diagnose",
           "load_plugins", "register"]
