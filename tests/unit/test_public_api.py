import discovery


def test_all_names_exist_and_are_sorted_once():
    for name in discovery.__all__:
        assert hasattr(discovery, name), name
    assert len(set(discovery.__all__)) == len(discovery.__all__)


def test_every_error_is_a_discovery_error():
    for name in discovery.__all__:
        obj = getattr(discovery, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, discovery.DiscoveryError), name
