;; Trap: executes `unreachable`, the way a panicking Rust function ends.
(module
  (memory (export "memory") 1)
  (func $fail unreachable)
  (func (export "_start") (call $fail)))
