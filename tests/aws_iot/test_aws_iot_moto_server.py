"""The moto control plane on loopback: every service the FOTA flow uses, and reset."""

from __future__ import annotations

import urllib.request

from otaharness.servers.aws_iot.moto_server import MotoServer


def test_serves_s3_iot_and_cognito_on_a_loopback_port(moto_server: MotoServer) -> None:
    assert moto_server.url.startswith("http://127.0.0.1:") and not moto_server.url.endswith(":0")
    s3 = moto_server.client("s3")
    s3.create_bucket(Bucket="fota-bucket")
    s3.put_object(Bucket="fota-bucket", Key="job1", Body=b"SOME HEX DATA", ContentType="text/x-hex")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": "fota-bucket", "Key": "job1"})
    with urllib.request.urlopen(urllib.request.Request(url, headers={"Range": "bytes=5-7"})) as response:
        assert response.status == 206 and response.read() == b"HEX"

    pool = moto_server.client("cognito-idp").create_user_pool(PoolName="users")["UserPool"]
    assert pool["Name"] == "users"
    thing = moto_server.client("iot").create_thing(thingName="fota")
    assert thing["thingArn"] == "arn:aws:iot:us-east-1:123456789012:thing/fota"
    assert moto_server.iot_backend().things[thing["thingArn"]].thing_name == "fota"  # same objects

    moto_server.reset()
    assert s3.list_buckets()["Buckets"] == []
    assert moto_server.client("iot").list_things()["things"] == []
    assert moto_server.client("cognito-idp").list_user_pools(MaxResults=10)["UserPools"] == []
