//! The function runtime against the WAT modules in `functions/wat/`: the ABI, and every
//! limit of the sandbox proven by a module that runs into it.

use std::time::Duration;

use switchyard_functions::{Failure, FailureCode, Function, Limits, Runtime};

fn wat(name: &str) -> Vec<u8> {
    let path = format!("{}/wat/{name}.wat", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn compile(rt: &Runtime, name: &str) -> Function {
    rt.compile(&wat(name))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn failure(rt: &Runtime, name: &str, input: &[u8], limits: Limits) -> Failure {
    let f = compile(rt, name);
    match rt.invoke(&f, input, &limits).result {
        Ok(out) => panic!("{name} succeeded with {:?}", String::from_utf8_lossy(&out)),
        Err(failure) => failure,
    }
}

#[test]
fn echo_returns_its_input() {
    let rt = Runtime::new().unwrap();
    let f = compile(&rt, "echo");
    let event = br#"{"specversion":"1.0","id":"1","source":"/s","type":"t","data":{"n":1}}"#;
    let run = rt.invoke(&f, event, &Limits::default());
    assert_eq!(run.result.unwrap(), event.to_vec());
    assert!(run.fuel_used.is_some_and(|f| f > 0), "{:?}", run.fuel_used);
    // Empty input, and the largest event a bus accepts (256 KiB).
    assert_eq!(rt.invoke(&f, b"", &Limits::default()).result.unwrap(), b"");
    let big = vec![b'x'; 256 << 10];
    assert_eq!(rt.invoke(&f, &big, &Limits::default()).result.unwrap(), big);
}

#[test]
fn every_invocation_starts_from_a_fresh_instance() {
    let rt = Runtime::new().unwrap();
    let f = compile(&rt, "wrap");
    for input in [&b"1"[..], b"[true]", b"2"] {
        let out = rt.invoke(&f, input, &Limits::default()).result.unwrap();
        let expected = format!("{{\"wrapped\":{}}}", String::from_utf8_lossy(input));
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }
}

#[test]
fn wat_and_binary_modules_both_compile() {
    let rt = Runtime::new().unwrap();
    let binary = wat::parse_bytes(&wat("echo")).unwrap().into_owned();
    assert!(binary.starts_with(b"\0asm"));
    let f = rt.compile(&binary).unwrap();
    assert_eq!(
        rt.invoke(&f, b"{}", &Limits::default()).result.unwrap(),
        b"{}"
    );
}

#[test]
fn a_looping_module_is_stopped_by_the_wall_clock() {
    let rt = Runtime::new().unwrap();
    let limits = Limits::new(Some(50), None, Some(Limits::MAX_FUEL)).unwrap();
    let f = compile(&rt, "spin");
    let run = rt.invoke(&f, b"{}", &limits);
    let failure = run.result.unwrap_err();
    assert_eq!(failure.code, FailureCode::Timeout, "{failure}");
    assert_eq!(failure.message, "still running after 50 ms");
    assert!(
        run.duration >= Duration::from_millis(50),
        "{:?}",
        run.duration
    );
    assert!(
        run.duration < Duration::from_millis(1_000),
        "{:?}",
        run.duration
    );
}

#[test]
fn a_looping_module_is_stopped_by_fuel() {
    let rt = Runtime::new().unwrap();
    let limits = Limits::new(Some(60_000), None, Some(100_000)).unwrap();
    let failure = failure(&rt, "spin", b"{}", limits);
    assert_eq!(failure.code, FailureCode::FuelExhausted, "{failure}");
    assert!(
        failure.message.starts_with("used all 100000 units of fuel"),
        "{failure}"
    );
}

#[test]
fn a_memory_hog_is_stopped_at_its_limit() {
    let rt = Runtime::new().unwrap();
    let limits = Limits::new(None, Some(8), None).unwrap();
    let failure = failure(&rt, "hog", b"{}", limits);
    assert_eq!(failure.code, FailureCode::Memory, "{failure}");
    assert_eq!(
        failure.message,
        "linear memory would grow from 7405568 to 8454144 bytes, over the limit of 8 MiB"
    );
}

#[test]
fn a_module_whose_initial_memory_is_over_the_limit_fails_as_memory() {
    let rt = Runtime::new().unwrap();
    let big = br#"(module (memory (export "memory") 200) (func (export "_start")))"#;
    let f = rt.compile(big).unwrap();
    let limits = Limits::new(None, Some(1), None).unwrap();
    let failure = rt.invoke(&f, b"", &limits).result.unwrap_err();
    assert_eq!(failure.code, FailureCode::Memory, "{failure}");
}

#[test]
fn traps_are_reported_with_the_function_they_happened_in() {
    let rt = Runtime::new().unwrap();
    let failure = failure(&rt, "trap", b"{}", Limits::default());
    assert_eq!(failure.code, FailureCode::Trap);
    assert!(failure.message.contains("unreachable"), "{failure}");
    assert!(failure.message.contains("fail"), "{failure}");
}

#[test]
fn a_non_zero_exit_carries_stderr() {
    let rt = Runtime::new().unwrap();
    let failure = failure(&rt, "reject", b"{}", Limits::default());
    assert_eq!(failure.code, FailureCode::Exit);
    assert_eq!(
        failure.message,
        "exited with code 3; stderr: customer id missing"
    );
}

#[test]
fn the_sandbox_has_no_files_no_sockets_and_no_sleep() {
    let rt = Runtime::new().unwrap();
    for (attempt, errno) in [("1", 8), ("2", 8), ("3", 8), ("4", 58)] {
        let failure = failure(&rt, "escape", attempt.as_bytes(), Limits::default());
        assert_eq!(
            failure.code,
            FailureCode::Exit,
            "attempt {attempt}: {failure}"
        );
        assert_eq!(
            failure.message,
            format!("exited with code {errno}"),
            "attempt {attempt}"
        );
    }
}

#[test]
fn modules_that_are_not_commands_are_refused_with_a_reason() {
    let rt = Runtime::new().unwrap();
    let err = |bytes: &[u8]| rt.compile(bytes).unwrap_err().to_string();
    assert_eq!(
        err(&wat("not-a-command")),
        "the module exports no `_start` function taking and returning nothing: it must be a WASI command"
    );
    assert_eq!(
        err(&wat("imports-env")),
        "the module imports \"http_get\" from \"env\"; functions may import only from \"wasi_snapshot_preview1\" (WASI preview 1)"
    );
    assert!(err(b"(module (func").starts_with("the module does not compile: "));
    assert!(err(b"\0asm\x01\0\0\0\xff").starts_with("the module does not compile: "));
    assert_eq!(
        err(&[0xff, 0xfe, 0x00, 0x01]),
        "the body is neither a WebAssembly binary nor WAT text"
    );
}

#[test]
fn limits_are_checked() {
    assert_eq!(Limits::new(None, None, None).unwrap(), Limits::default());
    assert_eq!(
        Limits::new(Some(0), None, None).unwrap_err(),
        "timeout_ms: must be at least 1"
    );
    assert_eq!(
        Limits::new(None, Some(4096), None).unwrap_err(),
        "memory_mb: must be at most 1024, got 4096"
    );
    let l = Limits::new(Some(250), Some(16), Some(5)).unwrap();
    assert_eq!((l.timeout_ms(), l.memory_mb(), l.fuel), (250, 16, 5));
}
