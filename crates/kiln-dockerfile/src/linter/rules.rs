//! The build-check rules and their messages, as in BuildKit's `linter/ruleset.go`.

use kiln_gostd::strconv::quote;

/// A build-check rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rule {
    /// The rule name (`StageNameCasing`), used in `# check=skip=...`.
    pub name: &'static str,
    /// The one-line description of the rule.
    pub description: &'static str,
    /// The documentation URL, empty when BuildKit gives none.
    pub url: &'static str,
    /// Experimental rules run only when enabled with `experimental=`.
    pub experimental: bool,
    /// Deprecated rules never run.
    pub deprecated: bool,
}

const fn rule(name: &'static str, description: &'static str, url: &'static str) -> Rule {
    Rule {
        name,
        description,
        url,
        experimental: false,
        deprecated: false,
    }
}

const fn experimental(rule: Rule) -> Rule {
    Rule {
        experimental: true,
        ..rule
    }
}

/// Stage names should be lowercase.
pub const STAGE_NAME_CASING: Rule = rule(
    "StageNameCasing",
    "Stage names should be lowercase",
    "https://docs.docker.com/go/dockerfile/rule/stage-name-casing/",
);
/// The `as` keyword should match the case of the `from` keyword.
pub const FROM_AS_CASING: Rule = rule(
    "FromAsCasing",
    "The 'as' keyword should match the case of the 'from' keyword",
    "https://docs.docker.com/go/dockerfile/rule/from-as-casing/",
);
/// Empty continuation lines.
pub const NO_EMPTY_CONTINUATION: Rule = rule(
    "NoEmptyContinuation",
    "Empty continuation lines will become errors in a future release",
    "https://docs.docker.com/go/dockerfile/rule/no-empty-continuation/",
);
/// Instruction keywords should all use the same casing.
pub const CONSISTENT_INSTRUCTION_CASING: Rule = rule(
    "ConsistentInstructionCasing",
    "All commands within the Dockerfile should use the same casing (either upper or lower)",
    "https://docs.docker.com/go/dockerfile/rule/consistent-instruction-casing/",
);
/// Stage names should be unique.
pub const DUPLICATE_STAGE_NAME: Rule = rule(
    "DuplicateStageName",
    "Stage names should be unique",
    "https://docs.docker.com/go/dockerfile/rule/duplicate-stage-name/",
);
/// `scratch` and `context` should not be stage names.
pub const RESERVED_STAGE_NAME: Rule = rule(
    "ReservedStageName",
    "Reserved words should not be used as stage names",
    "https://docs.docker.com/go/dockerfile/rule/reserved-stage-name/",
);
/// `CMD`/`ENTRYPOINT` should use the exec (JSON) form.
pub const JSON_ARGS_RECOMMENDED: Rule = rule(
    "JSONArgsRecommended",
    "JSON arguments recommended for ENTRYPOINT/CMD to prevent unintended behavior related to OS signals",
    "https://docs.docker.com/go/dockerfile/rule/json-args-recommended/",
);
/// `MAINTAINER` is deprecated.
pub const MAINTAINER_DEPRECATED: Rule = rule(
    "MaintainerDeprecated",
    "The MAINTAINER instruction is deprecated, use a label instead to define an image author",
    "https://docs.docker.com/go/dockerfile/rule/maintainer-deprecated/",
);
/// `FROM` uses an ARG that is not declared.
pub const UNDEFINED_ARG_IN_FROM: Rule = rule(
    "UndefinedArgInFrom",
    "FROM command must use declared ARGs",
    "https://docs.docker.com/go/dockerfile/rule/undefined-arg-in-from/",
);
/// A relative `WORKDIR` without an absolute one before it.
pub const WORKDIR_RELATIVE_PATH: Rule = rule(
    "WorkdirRelativePath",
    "Relative workdir without an absolute workdir declared within the build can have unexpected results if the base image changes",
    "https://docs.docker.com/go/dockerfile/rule/workdir-relative-path/",
);
/// A variable is used before it is defined.
pub const UNDEFINED_VAR: Rule = rule(
    "UndefinedVar",
    "Variables should be defined before their use",
    "https://docs.docker.com/go/dockerfile/rule/undefined-var/",
);
/// Several `CMD`, `ENTRYPOINT` or `HEALTHCHECK` in one stage.
pub const MULTIPLE_INSTRUCTIONS_DISALLOWED: Rule = rule(
    "MultipleInstructionsDisallowed",
    "Multiple instructions of the same type should not be used in the same stage",
    "https://docs.docker.com/go/dockerfile/rule/multiple-instructions-disallowed/",
);
/// The legacy `ENV key value` form.
pub const LEGACY_KEY_VALUE_FORMAT: Rule = rule(
    "LegacyKeyValueFormat",
    "Legacy key/value format with whitespace separator should not be used",
    "https://docs.docker.com/go/dockerfile/rule/legacy-key-value-format/",
);
/// The pulled base image has another platform than the one asked for.
pub const INVALID_BASE_IMAGE_PLATFORM: Rule = rule(
    "InvalidBaseImagePlatform",
    "Base image platform does not match expected target platform",
    "",
);
/// `FROM --platform=$TARGETPLATFORM`.
pub const REDUNDANT_TARGET_PLATFORM: Rule = rule(
    "RedundantTargetPlatform",
    "Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior",
    "https://docs.docker.com/go/dockerfile/rule/redundant-target-platform/",
);
/// An `ARG` or `ENV` name that looks like a secret.
pub const SECRETS_USED_IN_ARG_OR_ENV: Rule = rule(
    "SecretsUsedInArgOrEnv",
    "Sensitive data should not be used in the ARG or ENV commands",
    "https://docs.docker.com/go/dockerfile/rule/secrets-used-in-arg-or-env/",
);
/// The default values of the global ARGs give an invalid base image name.
pub const INVALID_DEFAULT_ARG_IN_FROM: Rule = rule(
    "InvalidDefaultArgInFrom",
    "Default value for global ARG results in an empty or invalid base image name",
    "https://docs.docker.com/go/dockerfile/rule/invalid-default-arg-in-from/",
);
/// `FROM --platform=linux/amd64` (a constant).
pub const FROM_PLATFORM_FLAG_CONST_DISALLOWED: Rule = rule(
    "FromPlatformFlagConstDisallowed",
    "FROM --platform flag should not use a constant value",
    "https://docs.docker.com/go/dockerfile/rule/from-platform-flag-const-disallowed/",
);
/// `COPY`/`ADD` of a path excluded by `.dockerignore` (experimental).
pub const COPY_IGNORED_FILE: Rule = experimental(rule(
    "CopyIgnoredFile",
    "Attempting to Copy file that is excluded by .dockerignore",
    "https://docs.docker.com/go/dockerfile/rule/copy-ignored-file/",
));
/// A comment above `FROM ... AS name` or `ARG` that does not start with the name
/// (experimental).
pub const INVALID_DEFINITION_DESCRIPTION: Rule = experimental(rule(
    "InvalidDefinitionDescription",
    "Comment for build stage or argument should follow the format: `# <arg/stage name> <description>`. If this is not intended to be a description comment, add an empty line or comment between the instruction and the comment.",
    "https://docs.docker.com/go/dockerfile/rule/invalid-definition-description/",
));
/// An `EXPOSE` protocol that is not lower case.
pub const EXPOSE_PROTO_CASING: Rule = rule(
    "ExposeProtoCasing",
    "Protocol in EXPOSE instruction should be lowercase",
    "https://docs.docker.com/go/dockerfile/rule/expose-proto-casing/",
);
/// An `EXPOSE` with an IP address or a host port.
pub const EXPOSE_INVALID_FORMAT: Rule = rule(
    "ExposeInvalidFormat",
    "IP address and host-port mapping should not be used in EXPOSE instruction. This will become an error in a future release",
    "https://docs.docker.com/go/dockerfile/rule/expose-invalid-format/",
);

/// Every rule, in BuildKit's order.
pub const ALL: &[&Rule] = &[
    &STAGE_NAME_CASING,
    &FROM_AS_CASING,
    &NO_EMPTY_CONTINUATION,
    &CONSISTENT_INSTRUCTION_CASING,
    &DUPLICATE_STAGE_NAME,
    &RESERVED_STAGE_NAME,
    &JSON_ARGS_RECOMMENDED,
    &MAINTAINER_DEPRECATED,
    &UNDEFINED_ARG_IN_FROM,
    &WORKDIR_RELATIVE_PATH,
    &UNDEFINED_VAR,
    &MULTIPLE_INSTRUCTIONS_DISALLOWED,
    &LEGACY_KEY_VALUE_FORMAT,
    &INVALID_BASE_IMAGE_PLATFORM,
    &REDUNDANT_TARGET_PLATFORM,
    &SECRETS_USED_IN_ARG_OR_ENV,
    &INVALID_DEFAULT_ARG_IN_FROM,
    &FROM_PLATFORM_FLAG_CONST_DISALLOWED,
    &COPY_IGNORED_FILE,
    &INVALID_DEFINITION_DESCRIPTION,
    &EXPOSE_PROTO_CASING,
    &EXPOSE_INVALID_FORMAT,
];

/// Finds a rule by name.
pub fn by_name(name: &str) -> Option<&'static Rule> {
    ALL.iter().copied().find(|r| r.name == name)
}

/// The messages of the rules, word for word as BuildKit formats them.
pub mod messages {
    use super::quote;

    /// `StageNameCasing`.
    pub fn stage_name_casing(stage_name: &str) -> String {
        format!("Stage name '{stage_name}' should be lowercase")
    }

    /// `FromAsCasing`: `from` and `as` are the keywords as written.
    pub fn from_as_casing(from: &str, as_keyword: &str) -> String {
        format!("'{as_keyword}' and '{from}' keywords' casing do not match")
    }

    /// `NoEmptyContinuation`.
    pub fn no_empty_continuation() -> String {
        "Empty continuation line".to_string()
    }

    /// `ConsistentInstructionCasing`: `correct_casing` is `lowercase` or `uppercase`.
    pub fn consistent_instruction_casing(command: &str, correct_casing: &str) -> String {
        format!(
            "Command '{command}' should match the case of the command majority ({correct_casing})"
        )
    }

    /// `DuplicateStageName`.
    pub fn duplicate_stage_name(stage_name: &str) -> String {
        format!(
            "Duplicate stage name {}, stage names should be unique",
            quote(stage_name)
        )
    }

    /// `ReservedStageName`.
    pub fn reserved_stage_name(stage_name: &str) -> String {
        format!(
            "Stage name should not use the same name as reserved stage {}",
            quote(stage_name)
        )
    }

    /// `JSONArgsRecommended`: the instruction keyword as written.
    pub fn json_args_recommended(instruction: &str) -> String {
        format!(
            "JSON arguments recommended for {instruction} to prevent unintended behavior related to OS signals"
        )
    }

    /// `MaintainerDeprecated`.
    pub fn maintainer_deprecated() -> String {
        "Maintainer instruction is deprecated in favor of using label".to_string()
    }

    /// `UndefinedArgInFrom`, with an optional suggestion.
    pub fn undefined_arg_in_from(arg: &str, suggestion: Option<&str>) -> String {
        let mut out = format!("FROM argument '{arg}' is not declared");
        if let Some(s) = suggestion.filter(|s| !s.is_empty()) {
            out.push_str(&format!(" (did you mean {s}?)"));
        }
        out
    }

    /// `WorkdirRelativePath`.
    pub fn workdir_relative_path(workdir: &str) -> String {
        format!(
            "Relative workdir {} can have unexpected results if the base image changes",
            quote(workdir)
        )
    }

    /// `UndefinedVar`, with an optional suggestion (a variable name, without `$`).
    pub fn undefined_var(var: &str, suggestion: Option<&str>) -> String {
        let mut out = format!("Usage of undefined variable '${var}'");
        if let Some(s) = suggestion.filter(|s| !s.is_empty()) {
            out.push_str(&format!(" (did you mean ${s}?)"));
        }
        out
    }

    /// `MultipleInstructionsDisallowed`: the instruction keyword as written.
    pub fn multiple_instructions_disallowed(instruction: &str) -> String {
        format!(
            "Multiple {instruction} instructions should not be used in the same stage because only the last one will be used"
        )
    }

    /// `LegacyKeyValueFormat`: the instruction keyword as written.
    pub fn legacy_key_value_format(instruction: &str) -> String {
        format!(
            "\"{instruction} key=value\" should be used instead of legacy \"{instruction} key value\" format"
        )
    }

    /// `InvalidBaseImagePlatform`.
    pub fn invalid_base_image_platform(image: &str, expected: &str, actual: &str) -> String {
        format!(
            "Base image {image} was pulled with platform {}, expected {} for current build",
            quote(actual),
            quote(expected)
        )
    }

    /// `RedundantTargetPlatform`: the platform flag value as written.
    pub fn redundant_target_platform(platform: &str) -> String {
        format!(
            "Setting platform to predefined {platform} in FROM is redundant as this is the default behavior"
        )
    }

    /// `SecretsUsedInArgOrEnv`: `instruction` is `ARG` or `ENV`.
    pub fn secrets_used_in_arg_or_env(instruction: &str, key: &str) -> String {
        format!(
            "Do not use ARG or ENV instructions for sensitive data ({instruction} {})",
            quote(key)
        )
    }

    /// `InvalidDefaultArgInFrom`: the base name as written.
    pub fn invalid_default_arg_in_from(base_name: &str) -> String {
        format!("Default value for ARG {base_name} results in empty or invalid base image name")
    }

    /// `FromPlatformFlagConstDisallowed`.
    pub fn from_platform_flag_const_disallowed(platform: &str) -> String {
        format!(
            "FROM --platform flag should not use constant value {}",
            quote(platform)
        )
    }

    /// `CopyIgnoredFile`: `command` is `Copy` or `Add`.
    pub fn copy_ignored_file(command: &str, file: &str) -> String {
        format!(
            "Attempting to {command} file {} that is excluded by .dockerignore",
            quote(file)
        )
    }

    /// `InvalidDefinitionDescription`: `instruction` is `FROM` or `ARG`.
    pub fn invalid_definition_description(instruction: &str, name: &str) -> String {
        format!("Comment for {instruction} should follow the format: `# {name} <description>`")
    }

    /// `ExposeProtoCasing`: the port as written.
    pub fn expose_proto_casing(port: &str) -> String {
        format!("Defined protocol '{port}' in EXPOSE instruction should be lowercase")
    }

    /// `ExposeInvalidFormat`: the port as written.
    pub fn expose_invalid_format(port: &str) -> String {
        format!(
            "EXPOSE instruction should not define an IP address or host-port mapping, found '{port}'"
        )
    }
}
