import a_module_that_does_not_exist  # noqa: F401  (the failure under test)


def model(input_spec, task, hp):
    raise AssertionError("never reached")
