"""The admin's "View site" leads to a page that answers (the API docs), and the server's root to the admin:
neither is a 404."""

import re

import pytest


@pytest.mark.django_db
def test_view_site_leads_to_a_page_that_answers(admin_client):
    index = admin_client.get("/admin/").content.decode()
    target = re.search(r'<a href="([^"]+)">View site</a>', index).group(1)
    assert target == "/api/docs/"
    assert admin_client.get(target).status_code == 200


def test_the_root_leads_to_the_admin(client):
    response = client.get("/")
    assert (response.status_code, response["Location"]) == (302, "/admin/")
    assert client.get("/", follow=True).status_code == 200  # the login page
