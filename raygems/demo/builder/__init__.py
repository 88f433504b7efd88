"""The tiny tree's builder: trains the weights that `raygems.demo` ships (a tool; the demo and the tests use the
shipped files). `python -m raygems.demo.builder --help`."""
