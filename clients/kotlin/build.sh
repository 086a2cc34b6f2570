#!/usr/bin/env bash
# Builds the Kotlin client and runs its tests: ./build.sh builds
# target/emojicast-client.jar, ./build.sh test also runs the JUnit 5 tests
# (src/test/kotlin) against a real emojicast. EMOJICAST_BIN names a built
# binary (the Go test that runs this passes its own); without it the tests
# build one with go build.
#
# Where the pieces come from: the Kotlin compiler, its standard library
# and kotlinx-coroutines-core from npm's kotlin-compiler package (JetBrains'
# kotlinc distribution, pinned in package-lock.json), OkHttp, Okio and
# JUnit 5 from Debian's libokhttp-java and junit5 (scripts/install-test-deps.sh
# installs them). No Maven: the machines this project builds on reach npm and
# Debian, not Maven Central.
set -euo pipefail
cd "$(dirname "$0")"

kotlin=node_modules/kotlin-compiler
if [[ ! -f $kotlin/lib/kotlin-compiler.jar ]]; then
	npm ci --no-audit --no-fund --loglevel=error
fi
java_lib=${JAVA_LIB:-/usr/share/java}
for jar in okhttp.jar okio.jar junit-platform-console-standalone.jar; do
	if [[ ! -f $java_lib/$jar ]]; then
		echo "build.sh: $java_lib/$jar is missing: install Debian's libokhttp-java and junit5 (scripts/install-test-deps.sh)" >&2
		exit 1
	fi
done
deps=$kotlin/lib/kotlin-stdlib.jar:$kotlin/lib/kotlinx-coroutines-core-jvm.jar:$java_lib/okhttp.jar:$java_lib/okio.jar

# kotlinc compiles into $2 from the sources under $1 when any is newer than
# what it built last; more arguments go to the compiler.
kotlinc() {
	local src=$1 out=$2 cp=$3
	shift 3
	if [[ -f $out.stamp ]] && [[ -z $(find "$src" -name '*.kt' -newer "$out.stamp") ]]; then
		return
	fi
	rm -rf "$out"
	mkdir -p "$out"
	JAVA_OPTS="-Xmx768m -XX:+UseSerialGC" bash $kotlin/bin/kotlinc-jvm -nowarn -jvm-target 1.8 -no-reflect -no-stdlib \
		-Xlambdas=indy -classpath "$cp" -d "$out" "$@" $(find "$src" -name '*.kt')
	touch "$out.stamp"
}

kotlinc src/main/kotlin target/classes "$deps"
(cd target/classes && jar --create --file ../emojicast-client.jar --date=1980-01-01T00:00:02Z .)

if [[ ${1:-} != test ]]; then
	exit 0
fi
# The tests are of the same module: they may use its internal names.
kotlinc src/test/kotlin target/test-classes "$deps:target/classes:$java_lib/junit-platform-console-standalone.jar" -Xfriend-paths=target/classes
# Test classes run in parallel: each starts its own emojicast processes.
[[ ${KOTLIN_TEST_COMPILE_ONLY:-} ]] && exit 0
exec java -Xmx512m -jar "$java_lib/junit-platform-console-standalone.jar" \
	--class-path "$deps:target/classes:target/test-classes" \
	--scan-class-path target/test-classes \
	--config junit.jupiter.execution.parallel.enabled=true \
	--config junit.jupiter.execution.parallel.mode.default=same_thread \
	--config junit.jupiter.execution.parallel.mode.classes.default=concurrent \
	--config junit.jupiter.execution.parallel.config.strategy=fixed \
	--config junit.jupiter.execution.parallel.config.fixed.parallelism=8 \
	--disable-banner --details=tree --fail-if-no-tests
