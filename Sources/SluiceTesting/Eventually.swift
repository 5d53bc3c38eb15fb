/// Waits until `condition` holds, checking every 10 ms, for at most `timeout`. For state that
/// settles asynchronously (a counter released on another loop); bounded in count and time.
public func eventually(
    timeout: Duration = .seconds(5),
    _ condition: () async throws -> Bool
) async rethrows -> Bool {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while clock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return try await condition()
}
