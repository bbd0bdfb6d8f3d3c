"""The demo workload: deterministic, contract-shaped runs with a planted regression and a burst."""

from hypermindlabs.demo.load import load_demo
from hypermindlabs.demo.workload import FAILURE_CLASSES, DemoSpec, demo_spec, generate_events

__all__ = ["FAILURE_CLASSES", "DemoSpec", "demo_spec", "generate_events", "load_demo"]
