// libFuzzer's driver, declared for Swift. It is linked only by a build with
// `-sanitize=fuzzer` (scripts/fuzz-http1.sh); other builds never reference it.
#include <stddef.h>
#include <stdint.h>

/// Runs libFuzzer with the command line's options on `callback`. SwiftPM names an executable's
/// entry point itself on Linux, so the fuzz target calls this from its `main` instead of letting
/// libFuzzer's own `main` run.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
