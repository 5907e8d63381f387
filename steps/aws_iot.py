"""AWS IoT Jobs FOTA steps (seed 003): accounts, certificates, trackers, SDK calls, jobs, shadow."""

import datetime as dt
import json
import re
from urllib.parse import urlsplit

from behave import given, then, when

from otaharness.bdd.support import json_argument, ota, substitute
from otaharness.emulators.aws_tracker.tracker import JobRejected, Tracker
from otaharness.servers.aws_iot import DATA_ENDPOINT
from otaharness.units import parse_size

# The seed names AWS services by their JavaScript SDK v3 package; boto3 names work as well.
SDK_PACKAGES = {
    "@aws-sdk/client-s3": "s3",
    "@aws-sdk/client-iot": "iot",
    "@aws-sdk/client-iot-data-plane": "iot-data",
    "@aws-sdk/client-iot-jobs-data-plane": "iot-jobs-data",
    "@aws-sdk/client-cognito-identity-provider": "cognito-idp",
}


def _service(context):
    runtime = ota(context)
    return runtime.run(runtime.service("aws-iot"))


def _call(context, service, operation, params):
    """Call a boto3 operation in an executor (moto answers from its own threads)."""
    runtime = ota(context)
    client = _service(context).client(SDK_PACKAGES.get(service, service))
    method = getattr(client, _snake_case(operation), None)
    if method is None:
        raise AttributeError(f"{service} has no operation {operation!r}")
    if isinstance(params.get("Body"), str):
        params["Body"] = params["Body"].encode()
    return runtime.run(runtime.loop.run_in_executor(None, lambda: method(**params)))


def _snake_case(operation: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", operation).lower()


def _plain(value):
    """An SDK response as JSON-like data: datetimes as ISO strings, bodies read."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if k != "ResponseMetadata"}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if hasattr(value, "read"):
        return value.read().decode(errors="replace")
    return value


def _sdk_result(context, result=None, error=None):
    ota(context).values["awsSDK"] = {"res": _plain(result or {}), "error": error}


# -- the generic SDK step ---------------------------------------------------------------------


@when("I execute `{operation}` of `{service}` with")
@given("I execute `{operation}` of `{service}` with")
def execute_sdk(context, operation, service):
    """Call an AWS operation on the flow's endpoint (moto, or yours) with the doc string's JSON
    as parameters; the result is `awsSDK.res`. Operation names as in the JavaScript SDK
    (`putObject`) or boto3 (`put_object`); services as `@aws-sdk/client-iot` or `iot`."""
    _sdk_result(context, _call(context, service, operation, json_argument(context)))


@when("I try to execute `{operation}` of `{service}` with")
def try_execute_sdk(context, operation, service):
    """Like `I execute`, but an AWS error is kept in `awsSDK.error` (code, message) instead of
    failing the step."""
    from botocore.exceptions import ClientError

    try:
        execute_sdk(context, operation, service)
    except ClientError as exc:
        _sdk_result(context, error={"code": exc.response["Error"]["Code"],
                                    "message": exc.response["Error"].get("Message", "")})


@then("the AWS call fails with `{code}`")
def aws_call_failed(context, code):
    """The last `I try to execute` failed with this error code."""
    error = ota(context).values.get("awsSDK", {}).get("error")
    assert error is not None, "the AWS call succeeded"
    assert error["code"] == code, f"the AWS call failed with {error['code']}: {error['message']}"


# -- accounts, buckets, certificates --------------------------------------------------------


@given("I am authenticated with Cognito as `{email}` with password `{password}`")
def cognito_login(context, email, password):
    """Register the account in a Cognito user pool (if new) and sign in; the tokens are
    `cognito.IdToken` / `cognito.AccessToken`."""
    values = ota(context).values
    email, password = substitute(email, values), substitute(password, values)
    pool = values.get("cognito", {}).get("userPoolId")
    if pool is None:
        pool = _call(context, "cognito-idp", "create_user_pool",
                     {"PoolName": "otaharness-users"})["UserPool"]["Id"]
        client_id = _call(context, "cognito-idp", "create_user_pool_client", {
            "UserPoolId": pool, "ClientName": "web",
            "ExplicitAuthFlows": ["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
        })["UserPoolClient"]["ClientId"]
        values["cognito"] = {"userPoolId": pool, "clientId": client_id}
    client_id = values["cognito"]["clientId"]
    _call(context, "cognito-idp", "sign_up",
          {"ClientId": client_id, "Username": email, "Password": password})
    _call(context, "cognito-idp", "admin_confirm_sign_up", {"UserPoolId": pool, "Username": email})
    auth = _call(context, "cognito-idp", "initiate_auth", {
        "ClientId": client_id, "AuthFlow": "USER_PASSWORD_AUTH",
        "AuthParameters": {"USERNAME": email, "PASSWORD": password}})["AuthenticationResult"]
    values["cognito"].update(IdToken=auth["IdToken"], AccessToken=auth["AccessToken"])


@given("a FOTA bucket in `{name}`")
def fota_bucket(context, name):
    """Create the firmware bucket (its name in `${name}`). As in the nRF cloud stack, its
    policy lets anyone read its objects: trackers download without signing."""
    bucket = f"fota-{ota(context).rng('bucket').getrandbits(48):012x}"
    _call(context, "s3", "create_bucket", {"Bucket": bucket})
    _call(context, "s3", "put_bucket_policy", {"Bucket": bucket, "Policy": json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                       "Resource": f"arn:aws:s3:::{bucket}/*"}]})})
    ota(context).values[name] = bucket


@given("I generate a certificate for the `{tracker}` tracker")
def generate_certificate(context, tracker):
    """Create the tracker's thing (an IMEI-like id), keys and certificate, attached to it. Its
    id and ARN are `${tracker.<name>.id}` and `${tracker.<name>.arn}`."""
    runtime = ota(context)
    # One stream per tracker, 13 digits drawn from it (a fresh stream per digit gave one digit 13
    # times: ten ids in all, and trackers of one scenario took each other's MQTT sessions).
    rng, taken = runtime.rng(f"imei:{tracker}"), {t["id"] for t in runtime.values.get("tracker", {}).values()}
    while (thing_id := "35" + "".join(str(rng.randrange(10)) for _ in range(13))) in taken:
        pass
    thing = _call(context, "iot", "create_thing", {"thingName": thing_id})
    cert = _call(context, "iot", "create_keys_and_certificate", {"setAsActive": True})
    _call(context, "iot", "attach_thing_principal",
          {"thingName": thing_id, "principal": cert["certificateArn"]})
    runtime.values.setdefault("tracker", {})[tracker] = {
        "id": thing_id, "arn": thing["thingArn"], "certificateArn": cert["certificateArn"],
        "certificateId": cert["certificateId"], "certificatePem": cert["certificatePem"]}
    # The private key stays out of the scenario values (they may be printed): the device has it.
    _credentials(context)[tracker] = (cert["certificatePem"], cert["keyPair"]["PrivateKey"])


def _credentials(context) -> dict:
    """Each tracker's (certificate PEM, private key PEM), as its flash holds them."""
    if not hasattr(context, "tracker_credentials"):
        context.tracker_credentials = {}
    return context.tracker_credentials


def _tls_options(context) -> dict:
    """TLS choices a step made for the next tracker start (trusted CA, host name it dials)."""
    if not hasattr(context, "tracker_tls_options"):
        context.tracker_tls_options = {}
    return context.tracker_tls_options


# -- trackers ---------------------------------------------------------------------------------


def _trackers(context) -> dict:
    if not hasattr(context, "trackers"):
        context.trackers = {}
    return context.trackers


def _tracker(context, name) -> Tracker:
    try:
        return _trackers(context)[name]
    except KeyError:
        raise KeyError(f"no tracker {name!r}: connect it first") from None


def _start_tracker(context, name, *, autonomous, version="1.0.0", must_connect=True):
    runtime = ota(context)
    if name not in runtime.values.get("tracker", {}):
        generate_certificate(context, name)
    service = _service(context)
    endpoints = service.endpoints()
    tls, server_name = _tracker_tls(context, name, service, endpoints)
    mqtt_url = endpoints["mqtts"] if tls is not None else endpoints["mqtt"]

    async def start():
        mqtt_host, mqtt_port = await runtime.link(mqtt_url)
        s3_endpoint = await runtime.link(endpoints["aws"])
        tracker = Tracker(runtime.values["tracker"][name]["id"], mqtt_host=mqtt_host,
                          mqtt_port=mqtt_port, clock=runtime.clock, s3_endpoint=s3_endpoint,
                          bind_address=runtime.address_of(name), app_version=version,
                          autonomous=autonomous, rng=runtime.rng(f"tracker:{name}"),
                          tls=tls, mqtt_server_name=server_name)
        runtime.add_cleanup(tracker.disconnect)
        if must_connect:
            await tracker.connect()
        else:
            await tracker.power_on()
        return tracker

    tracker = runtime.run(start())
    _trackers(context)[name] = runtime.devices[name] = tracker


def _tracker_tls(context, name, service, endpoints):
    """The tracker's TLS context and the MQTT host name it checks, or (None, None) when the
    target serves plain MQTT only."""
    if "mqtts" not in endpoints:
        return None, None
    certificate, key = _credentials(context)[name]
    options = _tls_options(context).get(name, {})
    tls = service.device_tls(certificate, key, ca_file=options.get("ca_file"))
    default_name = urlsplit(endpoints["mqtts"]).hostname if not service.embedded else DATA_ENDPOINT
    return tls, options.get("server_name", default_name)


@given("I connect the `{name}` tracker")
def connect_tracker(context, name):
    """Connect the tracker's MQTT session; it acts only when a step tells it to (as the seed's
    tracker does)."""
    _start_tracker(context, name, autonomous=False)


@given("the `{name}` tracker runs its firmware version `{version}`")
@when("the `{name}` tracker runs its firmware version `{version}`")
def run_tracker_firmware(context, name, version):
    """Start the tracker as its firmware runs it: it takes the next job by itself, downloads
    the image in 2 KiB ranges, reboots into it and reports the new version."""
    _start_tracker(context, name, autonomous=True, version=version)


@given("the `{name}` tracker stores the next started job into `{key}`")
@when("the `{name}` tracker stores the next started job into `{key}`")
@then("the `{name}` tracker stores the next started job into `{key}`")
def store_next_started_job(context, name, key):
    """The tracker asks for the next job (start-next); the execution it gets is stored."""
    execution = ota(context).run(_tracker(context, name).start_next_job())
    assert execution is not None, f"no job is pending for tracker {name}"
    ota(context).values[key] = execution


@when("the `{name}` tracker updates the job in `{key}` to {status} with expected version {version:d}")
def update_job(context, name, key, status, version):
    """The tracker updates the stored job's execution; a rejection is kept in
    `jobUpdate.error`."""
    runtime = ota(context)
    job_id = runtime.values[key]["jobId"]
    try:
        result = runtime.run(_tracker(context, name).update_job(
            job_id, status, expected_version=version))
        runtime.values["jobUpdate"] = {"res": result, "error": None}
    except JobRejected as rejected:
        runtime.values["jobUpdate"] = {"res": None, "error": {
            "code": rejected.code, "message": rejected.message}}


# -- jobs ------------------------------------------------------------------------------------


@given("the firmware `{version}` is in the FOTA bucket `{bucket}` as `{key}`")
def firmware_in_bucket(context, version, bucket, key):
    """Put an image for `version` (bytes derived from the version, 10 KiB) into the bucket; its
    size is `${firmware.<version>.size}`."""
    _put_firmware(context, version, bucket, key, 10240)


@given("the firmware `{version}` of {size} is in the FOTA bucket `{bucket}` as `{key}`")
def sized_firmware_in_bucket(context, version, size, bucket, key):
    """The same with an image of this size (`64 KiB`, `700 bytes`)."""
    _put_firmware(context, version, bucket, key, parse_size(size))


@then("the object `{key}` in the FOTA bucket is {size}")
def object_size(context, key, size):
    """S3 answers a HEAD of the object with this Content-Length, and a GET with as many bytes."""
    runtime = ota(context)
    bucket, key = runtime.values["fotaBucketName"], substitute(key, runtime.values)
    head = _call(context, "s3", "head_object", {"Bucket": bucket, "Key": key})
    body = _call(context, "s3", "get_object", {"Bucket": bucket, "Key": key})["Body"].read()
    expected = parse_size(size)
    assert head["ContentLength"] == len(body) == expected, (
        f"{key}: HEAD says {head['ContentLength']} bytes, GET gave {len(body)}, expected {expected}")


def _put_firmware(context, version: str, bucket: str, key: str, size: int) -> None:
    runtime = ota(context)
    bucket, key = substitute(bucket, runtime.values), substitute(key, runtime.values)
    line = f"firmware {version}\n".encode()
    image = (line * (size // len(line) + 1))[:size]
    _call(context, "s3", "put_object", {"Bucket": bucket, "Key": key, "Body": image,
                                        "ContentType": "text/x-hex"})
    runtime.values.setdefault("firmware", {})[version] = {"size": len(image), "bucket": bucket,
                                                          "key": key}


def _job_document(context, version, bucket, key, size=None):
    firmware = ota(context).values.get("firmware", {}).get(version, {})
    return {"operation": "app_fw_update", "size": size or firmware.get("size", 0),
            "filename": f"{version}.hex", "fwversion": version,
            "location": {"protocol": "https", "host": f"{bucket}.s3.amazonaws.com",
                         "path": key}}


@when("I create the job `{job}` upgrading the `{name}` tracker to `{version}` from `{key}`")
@given("I create the job `{job}` upgrading the `{name}` tracker to `{version}` from `{key}`")
def create_fota_job(context, job, name, version, key):
    """createJob for one tracker with an nRF `app_fw_update` document pointing at the object
    `key` of the FOTA bucket (`${fotaBucketName}`); the job id is stored as `${<job>}`."""
    runtime = ota(context)
    bucket = runtime.values["fotaBucketName"]
    key = substitute(key, runtime.values)
    job_id = runtime.values.setdefault(job, f"{job}-{runtime.rng('job').getrandbits(32):08x}")
    document = _job_document(context, version, bucket, key)
    _call(context, "iot", "create_job", {
        "jobId": job_id, "targets": [runtime.values["tracker"][name]["arn"]],
        "document": json.dumps(document), "targetSelection": "SNAPSHOT",
        "description": f"Upgrade {runtime.values['tracker'][name]['id']} to version {version}."})


def _describe_execution(context, job_id, thing_name):
    """The execution as describeJobExecution shows it. On the embedded back end it is read from
    moto's state in process: `soon` checks run at quiet moments and must not wait on HTTP."""
    service = _service(context)
    if service.embedded:
        record = service.backend.moto.iot_backend().job_executions.get((job_id, thing_name))
        return _plain(record.to_get_dict()) if record is not None else None
    return _plain(service.client("iot").describe_job_execution(
        jobId=job_id, thingName=thing_name)["execution"])


def _execution_of(context, job, name):
    runtime = ota(context)
    execution = _describe_execution(context, runtime.values[job],
                                    runtime.values["tracker"][name]["id"])
    assert execution is not None, f"the `{name}` tracker has no execution of {job}"
    return execution


# Terminal statuses only the device sets (TIMED_OUT, CANCELED, REMOVED come from the service).
DEVICE_SET_STATUSES = ("SUCCEEDED", "FAILED", "REJECTED")


@then("the job `{job}` of the `{name}` tracker is {status}")
def job_status(context, job, name, status):
    """The tracker's execution of the job has this status now, as the Jobs service records it; it
    is stored as `execution`. A status only the device sets (SUCCEEDED, FAILED, REJECTED) must
    also be in the tracker's own log of accepted updates. With `soon` in front, the step is
    retried until it holds."""
    execution = ota(context).values["execution"] = _execution_of(context, job, name)
    assert execution["status"] == status, (
        f"the job is {execution['status']}, not {status}; tracker events: "
        f"{_tracker(context, name).events[-8:]}")
    if status in DEVICE_SET_STATUSES:  # only the device ends a job so: it must have said so
        said = f"job {ota(context).values[job]} {status} ("
        assert any(text.startswith(said) for _, text in _tracker(context, name).events), (
            f"the Jobs service shows {status}, but the `{name}` tracker never had an update to "
            f"{status} accepted; its events: {_tracker(context, name).events[-8:]}")


@then("the job `{first}` of the `{name}` tracker finished before the job `{second}`")
def jobs_in_order(context, first, name, second):
    """The first job's execution ended before the second one started."""
    one, two = _execution_of(context, first, name), _execution_of(context, second, name)
    assert one["status"] == "SUCCEEDED", f"{first} is {one['status']}"
    assert one["lastUpdatedAt"] <= two["startedAt"], f"{first}: {one}; {second}: {two}"


@given("the `{name}` tracker starts the next job with a step timeout of {minutes:d} minutes")
def start_next_with_timeout(context, name, minutes):
    """start-next with stepTimeoutInMinutes; the execution is stored as `job`."""
    runtime = ota(context)
    runtime.values["job"] = runtime.run(
        _tracker(context, name).start_next_job(step_timeout_minutes=minutes))


@then("the `{name}` tracker still runs firmware version `{version}`")
def tracker_version(context, name, version):
    """The tracker's running firmware version."""
    actual = _tracker(context, name).app_version
    assert actual == version, f"the `{name}` tracker runs {actual}"


@then("the `{name}` tracker reports firmware version `{version}` in its shadow")
def shadow_reports_version(context, name, version):
    """The thing shadow (read with get_thing_shadow) has `state.reported.dev.v.appV`."""
    from botocore.exceptions import ClientError

    runtime = ota(context)
    thing = runtime.values["tracker"][name]["id"]
    try:
        shadow = _call(context, "iot-data", "get_thing_shadow", {"thingName": thing})
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
        # AWS answers 404 for a thing whose shadow was never written: say so in the device's terms.
        raise AssertionError(
            f"the `{name}` tracker has reported no version: thing {thing} has no shadow yet (the"
            f" tracker runs {_tracker(context, name).app_version}; it writes its shadow after an"
            f" upgrade)") from None
    document = json.loads(shadow["payload"].read())
    reported = document.get("state", {}).get("reported", {})
    assert reported.get("dev", {}).get("v", {}).get("appV") == version, (
        f"the shadow reports {reported}")
    assert _tracker(context, name).app_version == version


# -- device identity: certificates, trust, TLS faults ------------------------------------------


def _embedded_backend(context, what):
    service = _service(context)
    if not service.embedded:
        raise NotImplementedError(f"{what} needs the embedded AWS IoT back end (its device CA)")
    return service.backend


def _give_certificate(context, name, issued, *, ca_pem=None):
    """Register ``issued`` in the account (under ``ca_pem`` when given, else as issued by
    AWS's own CA), attach it to the tracker's thing and store it in the tracker's flash."""
    runtime = ota(context)
    if name not in runtime.values.get("tracker", {}):
        generate_certificate(context, name)
    entry = runtime.values["tracker"][name]
    if ca_pem is not None:
        registered = _call(context, "iot", "register_certificate", {
            "certificatePem": issued.certificate_pem, "caCertificatePem": ca_pem, "setAsActive": True})
    else:
        registered = _embedded_backend(context, "a certificate from AWS's CA").register_issued_certificate(issued)
    _call(context, "iot", "attach_thing_principal",
          {"thingName": entry["id"], "principal": registered["certificateArn"]})
    entry.update(certificateArn=registered["certificateArn"], certificateId=registered["certificateId"],
                 certificatePem=issued.certificate_pem)
    _credentials(context)[name] = (issued.certificate_pem, issued.key_pem)
    tracker = _trackers(context).get(name)
    if tracker is not None:  # a running tracker keeps it in flash: its next connection uses it
        service = _service(context)
        tracker.tls, _server_name = _tracker_tls(context, name, service, service.endpoints())


@given("the `{name}` tracker has an expired certificate")
def expired_certificate(context, name):
    """The tracker's certificate (registered, ACTIVE, attached) expired two days ago on the real
    clock, where TLS checks it."""
    pki = ota(context).pki()
    _give_certificate(context, name, pki.device_ca.issue_expired("AWS IoT Certificate"))


@given("the `{name}` tracker has a certificate that is not yet valid")
def future_certificate(context, name):
    """The tracker's certificate (registered, ACTIVE, attached) becomes valid in two days."""
    pki = ota(context).pki()
    _give_certificate(context, name, pki.device_ca.issue_not_yet_valid("AWS IoT Certificate"))


@given("my CA `{ca}` is registered in AWS IoT")
@when("my CA `{ca}` is registered in AWS IoT")
def register_my_ca(context, ca):
    """A CA of the user's own (bring your own CA), registered ACTIVE with
    `register_ca_certificate`; its id is `${ca.<name>.id}`."""
    from otaharness.runtime.pki import CertificateAuthority

    authority = CertificateAuthority(f"{ca} (device CA of the user)")
    result = _call(context, "iot", "register_ca_certificate", {
        "caCertificate": authority.certificate_pem, "setAsActive": True})
    _authorities(context)[ca] = authority
    ota(context).values.setdefault("ca", {})[ca] = {"id": result["certificateId"],
                                                    "arn": result["certificateArn"]}


def _authorities(context) -> dict:
    if not hasattr(context, "user_authorities"):
        context.user_authorities = {}
    return context.user_authorities


@given("the `{name}` tracker has a certificate from my CA `{ca}`")
@when("the `{name}` tracker gets a certificate from my CA `{ca}`")
def certificate_from_my_ca(context, name, ca):
    """Issue the tracker a certificate from the user's CA, register it under that CA
    (`register_certificate`), attach it to the tracker's thing and store it in the tracker's
    flash; the next connection uses it. The previous certificate stays as it is."""
    authority = _authorities(context)[ca]
    _give_certificate(context, name, authority.issue("AWS IoT Certificate"), ca_pem=authority.certificate_pem)


@given("the `{name}` tracker trusts only an unrelated CA")
def trusts_unrelated_ca(context, name):
    """The tracker's trust store holds a CA that did not sign the server's certificate (an old
    or wrong root CA baked into the firmware)."""
    pki = ota(context).pki()
    path = pki.write("unrelated-ca.pem", pki.rogue_ca.certificate_pem)
    _tls_options(context).setdefault(name, {})["ca_file"] = path


@given("the `{name}` tracker dials the MQTT endpoint as `{host}`")
def dials_as(context, name, host):
    """The host name the tracker checks the broker's certificate for (and sends as SNI)."""
    _tls_options(context).setdefault(name, {})["server_name"] = host


@when("the `{name}` tracker is switched on running its firmware version `{version}`")
@given("the `{name}` tracker is switched on running its firmware version `{version}`")
def switched_on(context, name, version):
    """Start the tracker as its firmware runs it, without requiring the connection to succeed:
    a refused connection is an event in the tracker's log, and it tries again with backoff."""
    _start_tracker(context, name, autonomous=True, version=version, must_connect=False)


def _failures(context, name):
    return [(t, text) for t, text in _tracker(context, name).events
            if text.startswith("connection failed") or text.startswith("MQTT connection lost")]


@then("the `{name}` tracker is refused with `{reason}`")
def tracker_refused(context, name, reason):
    """The tracker's own log: a connection attempt failed (or was cut) with ``reason`` in the
    error the TLS library or the MQTT client reported. With `soon`, retried until it holds."""
    failures = _failures(context, name)
    assert any(reason in text for _t, text in failures), (
        f"no failure with {reason!r}; the tracker's failures: {[t for _, t in failures[-4:]]}")
    assert not _tracker(context, name).connected, f"the `{name}` tracker is connected"


@then("the `{name}` tracker's log shows a failed connection with `{reason}`")
def tracker_failed_once(context, name, reason):
    """Some connection attempt of the tracker failed with ``reason`` (it may be connected now)."""
    failures = _failures(context, name)
    assert any(reason in text for _t, text in failures), (
        f"no failure with {reason!r}; the tracker's failures: {[t for _, t in failures[-4:]]}")


@then("the `{name}` tracker has tried {count:d} times with growing intervals")
def retried_with_backoff(context, name, count):
    """At least ``count`` failed connection attempts, each after a longer wait than the one
    before (the tracker's backoff, seen in its own log)."""
    times = [t for t, _text in _failures(context, name)]
    assert len(times) >= count, f"{len(times)} failed attempts: {_failures(context, name)}"
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert all(later > earlier for earlier, later in zip(gaps, gaps[1:])), f"waits between attempts: {gaps}"


@then("the `{name}` tracker is connected")
def tracker_connected(context, name):
    """The tracker holds an MQTT connection (after a CONNACK) now."""
    tracker = _tracker(context, name)
    assert tracker.connected, f"the `{name}` tracker is not connected; events: {tracker.events[-5:]}"


@then("the gateway refused the `{name}` tracker because `{reason}`")
def gateway_refused(context, name, reason):
    """The MQTT gateway's own log of its decisions (after the TLS handshake) names the reason."""
    backend = _embedded_backend(context, "the gateway's log")
    client_id = ota(context).values["tracker"][name]["id"]
    address = ota(context).address_of(name)
    events = [e.what for e in backend.gateway.events if e.client_id == client_id or e.peer.startswith(f"{address}:")]
    assert any(reason in what for what in events), f"the gateway's decisions on {name}: {events[-6:]}"
