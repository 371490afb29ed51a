use super::*;

#[test]
fn a_dismantled_bundle_is_freed_with_a_pace_point_per_entity() {
    let b =
        load(&std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples/bundle"))
            .unwrap_or_else(|e| panic!("{e}"));
    let (entities, resources) = (b.entities.len(), b.exact_resources.len());
    assert!(entities >= 3, "{entities}");
    assert_eq!(
        crate::pace::points_in_background(move || b.dismantle()),
        (entities + resources) as u64
    );
}
