import Synchronization

/// A value shared between a test and the tasks, handlers or closures it starts. A `Mutex` is
/// non-copyable and a local one cannot be captured by concurrent closures, so tests share it
/// through this class.
public final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>

    public init(_ value: Value) {
        mutex = Mutex(value)
    }

    public func withLock<Result: Sendable, Failure: Error>(_ body: (inout Value) throws(Failure) -> Result) throws(Failure) -> Result {
        try mutex.withLock { value throws(Failure) -> Result in try body(&value) }
    }

    /// A copy of the value now.
    public var value: Value { withLock { $0 } }
}
