/// libFuzzer's entry point: one input, any bytes. A broken invariant traps, which libFuzzer
/// reports as a crash and saves the input for.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzHTTP1(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    HTTP1Invariants.check(input)
    return 0
}
