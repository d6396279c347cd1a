"""Testing helpers shipped with account_lifecycle: fakes, contract suites and more, for the
library's own tests and for host applications that plug in their own ports."""
