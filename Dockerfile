# Custom Dataflow / portable-runner worker image for tapefit: Beam's own Python SDK
# image (same Beam and Python versions as the launcher, or the job is rejected), with
# TensorFlow and tapefit preinstalled so workers start without pip installs.
#
#   docker build -t REGION-docker.pkg.dev/PROJECT/REPO/tapefit:0.1.0 .
#   docker push REGION-docker.pkg.dev/PROJECT/REPO/tapefit:0.1.0
#   tapefit ... --runner DataflowRunner --sdk_container_image REGION-docker.pkg.dev/PROJECT/REPO/tapefit:0.1.0
#
# Keep BEAM_VERSION equal to the launcher's `pip show apache-beam` and the tag's
# python3.X to its Python (a test checks both against this machine's versions).
ARG BEAM_VERSION=2.77.0
FROM apache/beam_python3.11_sdk:${BEAM_VERSION}

ARG TENSORFLOW_VERSION=2.21.0
WORKDIR /opt/tapefit
COPY setup.py README.md ./
COPY pipeline ./pipeline
COPY jobs ./jobs
# apache-beam is pinned by the base image; installing tapefit must not replace it.
RUN pip install --no-cache-dir "tensorflow==${TENSORFLOW_VERSION}" \
    && pip install --no-cache-dir ".[gcp]" "apache-beam[gcp]==$(python -c 'import apache_beam; print(apache_beam.__version__)')"

# The SDK image's own entry point starts the Beam worker harness.
ENTRYPOINT ["/opt/apache/beam/boot"]
