import Synchronization

/// A fixed number of atomics in one allocation, indexed at run time (histogram buckets, outcome
/// counters). `Atomic` is non-copyable, so it cannot live in an `Array`; a class per counter
/// would cost an allocation each and a pointer hop on every update.
///
/// `@unchecked Sendable`: the buffer is allocated once and never moved or resized, and every
/// element is an `Atomic`, so sharing it across threads is safe.
final class AtomicArray<Value: AtomicRepresentable & Sendable>: @unchecked Sendable {
    let count: Int
    private let storage: UnsafeMutablePointer<Atomic<Value>>

    init(repeating value: Value, count: Int) {
        precondition(count >= 0)
        self.count = count
        storage = .allocate(capacity: count)
        for index in 0..<count { (storage + index).initialize(to: Atomic(value)) }
    }

    deinit {
        storage.deinitialize(count: count)
        storage.deallocate()
    }

    /// The element at `index`, borrowed in place (an atomic must never be copied out).
    subscript(index: Int) -> Atomic<Value> {
        unsafeAddress {
            precondition(index >= 0 && index < count, "AtomicArray index out of range")
            return UnsafePointer(storage + index)
        }
    }
}
