//! Compile tests of the macros and of the trait bounds users meet (`ui/repository`): every supported form compiles (`ui/<macro>/pass/`), every error
//! message the macros emit has a case with its expected output (`ui/<macro>/fail/*.stderr`).
//! After a deliberate change of a message: `TRYBUILD=overwrite cargo test -p tests --test ui`, then
//! read the diff of the `.stderr` files.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    for family in ["event", "aggregate", "commands", "projection", "repository"] {
        cases.pass(format!("ui/{family}/pass/*.rs"));
        cases.compile_fail(format!("ui/{family}/fail/*.rs"));
    }
}
