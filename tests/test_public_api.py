"""The curated public surface stays importable and complete."""

import hypermindlabs


def test_every_name_in_all_is_importable_from_the_package():
    for name in hypermindlabs.__all__:
        assert getattr(hypermindlabs, name) is not None, name


def test_the_app_factory_is_reachable_from_the_package_and_web_ui(tmp_path):
    import web_ui
    from hypermindlabs import Settings

    app = hypermindlabs.create_app(Settings(database_url=f"sqlite:///{tmp_path / 'x.db'}"))
    assert app.test_client().get("/healthz").status_code == 200
    assert web_ui.create_app is not None


def test_the_lazy_surface_names_every_name_once_and_resolves_it_where_it_lives():
    assert sorted(hypermindlabs.__all__) == sorted(hypermindlabs._WHERE)
    from hypermindlabs.store import EventStore

    assert hypermindlabs.EventStore is EventStore


def test_the_contract_facades_re_export_what_they_promise():
    import importlib

    for facade in ("run_events", "failure_triage", "telemetry", "run_manager"):
        module = importlib.import_module(f"hypermindlabs.{facade}")
        for name in module.__all__:
            assert getattr(module, name) is not None, (facade, name)
